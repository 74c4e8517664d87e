//! ant-supernet
