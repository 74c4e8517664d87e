//! ant-temporal
