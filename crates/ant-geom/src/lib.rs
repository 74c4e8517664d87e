//! ant-geom
