//! ant-train
