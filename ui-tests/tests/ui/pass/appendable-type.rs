//! An appendable type: `#[shm(appendable)]` with `#[shm(name)]` in one list or two, a renamed
//! field with its alias, and a deprecated field that Rust code is warned about.
#![deny(warnings)]

use shm_core::SharedState;

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
#[shm(name = "Pose", appendable)]
struct PoseV1 {
    tick: u64,
    status: u32,
    heading: f32,
}

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
#[shm(name = "Pose")]
#[shm(appendable)]
struct PoseV2 {
    tick: u64,
    #[shm(alias = "status")]
    state: u32,
    #[deprecated = "use `yaw`"]
    #[shm(deprecated)]
    heading: f32,
    yaw: f64,
}

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
#[shm(name = "Pose")]
struct NotAppendable {
    tick: u64,
    status: u32,
    heading: f32,
}

fn main() {
    assert!(PoseV1::LAYOUT.is_appendable());
    assert!(PoseV2::LAYOUT.is_appendable());
    assert_ne!(PoseV1::LAYOUT_HASH, NotAppendable::LAYOUT_HASH);
    let fields = PoseV2::LAYOUT.fields();
    assert_eq!((fields[1].name, fields[1].alias), ("state", Some("status")));
    assert!(fields[2].deprecated && !fields[3].deprecated);
    let v2 = shm_core::LayoutBuf::from(PoseV2::LAYOUT);
    let v1 = shm_core::LayoutBuf::from(PoseV1::LAYOUT);
    assert_eq!(v1.compatibility(&v2), Ok(shm_core::Compat::SegmentOlder));
    // Code that still names the deprecated field is warned (denied here) unless it says so.
    #[allow(deprecated)]
    let p = PoseV2 { tick: 1, state: 2, heading: 0.0, yaw: 1.0 };
    #[allow(deprecated)]
    let heading = p.heading;
    assert_eq!((p.tick, p.state, heading, p.yaw), (1, 2, 0.0, 1.0));
}
