//! ant-detrac
