//! ant-metrics
