use core::mem::{align_of, offset_of, size_of};
use shm_core::layout::Kind;
use shm_core::SharedState;

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct Vec3 {
    x: f64,
    y: f64,
    z: f64,
}

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct Pose {
    position: Vec3,
    orientation: [f64; 4],
}

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct Robot {
    tick: u64,
    pose: Pose,
    status: u32,
    flags: u32,
}

fn main() {
    let robot = Robot::LAYOUT;
    assert_eq!(robot.size, size_of::<Robot>());
    assert_eq!(robot.align, align_of::<Robot>());
    let names: Vec<_> = robot.fields().iter().map(|f| f.name).collect();
    assert_eq!(names, ["tick", "pose", "status", "flags"]);
    assert_eq!(robot.fields()[1].offset, offset_of!(Robot, pose));
    assert_eq!(robot.fields()[2].offset, offset_of!(Robot, status));
    assert_eq!(robot.fields()[3].offset, offset_of!(Robot, flags));

    // The nested descriptors are the nested types' own, all the way down.
    let pose = robot.fields()[1].layout;
    assert_eq!(pose, Pose::LAYOUT);
    assert_eq!(pose.size, size_of::<Pose>());
    assert_eq!(pose.fields()[1].offset, offset_of!(Pose, orientation));
    let position = pose.fields()[0].layout;
    assert_eq!(position, Vec3::LAYOUT);
    assert_eq!(position.fields()[2].name, "z");
    assert_eq!(position.fields()[2].offset, offset_of!(Vec3, z));
    assert!(matches!(
        pose.fields()[1].layout.kind,
        Kind::Array { len: 4, .. }
    ));

    // Changing the nested type would change the outer hash: the hashes differ by content.
    assert_ne!(Robot::LAYOUT_HASH, Pose::LAYOUT_HASH);
    assert_ne!(Pose::LAYOUT_HASH, Vec3::LAYOUT_HASH);
}
