//! `--device` parsing: the CPU backend by default, wgpu and ndarray behind cargo features.
