//! ant-scheduler
