use shm_core::layout::Kind;
use shm_core::SharedState;

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
#[shm(name = "RobotPose")]
struct Pose {
    x: f64,
    y: f64,
}

/// The same type under another Rust name: the stable name and the fields are what count.
#[derive(SharedState, Clone, Copy)]
#[repr(C)]
#[shm(name = "RobotPose")]
struct PoseV2 {
    x: f64,
    y: f64,
}

/// The same fields without a stable name.
#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct Unnamed {
    x: f64,
    y: f64,
}

fn main() {
    match Pose::LAYOUT.kind {
        Kind::Struct {
            name, stable_name, ..
        } => {
            assert_eq!(name, "Pose");
            assert_eq!(stable_name, Some("RobotPose"));
        }
        other => panic!("expected a struct, found {other:?}"),
    }
    assert_eq!(Pose::LAYOUT.struct_name(), Some("RobotPose"));
    assert_eq!(Pose::LAYOUT_HASH, PoseV2::LAYOUT_HASH);
    assert_ne!(Pose::LAYOUT_HASH, Unnamed::LAYOUT_HASH);
}
