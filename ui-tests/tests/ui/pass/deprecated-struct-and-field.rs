//! The generated code names a deprecated struct and field without a warning of its own.
#![deny(warnings, deprecated)]

use shm_core::SharedState;

#[deprecated = "use `Pose`"]
#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct OldPose {
    x: f64,
    y: f64,
}

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct Reading {
    #[deprecated = "use `value`"]
    raw: u32,
    value: u32,
}

#[allow(deprecated)]
fn main() {
    assert_eq!(OldPose::LAYOUT.fields()[1].name, "y");
    assert_eq!(Reading::LAYOUT.fields()[0].name, "raw");
}
