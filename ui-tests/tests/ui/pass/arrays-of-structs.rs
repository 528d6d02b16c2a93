use core::mem::{offset_of, size_of};
use shm_core::layout::Kind;
use shm_core::SharedState;

#[derive(SharedState, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct Point {
    x: i32,
    y: i32,
}

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct Path {
    len: u32,
    closed: u32,
    points: [Point; 8],
}

fn main() {
    let path = Path::LAYOUT;
    assert_eq!(path.size, size_of::<Path>());
    assert_eq!(path.size, 8 + 8 * 8);
    assert_eq!(path.fields()[2].offset, offset_of!(Path, points));
    match path.fields()[2].layout.kind {
        Kind::Array { len, element } => {
            assert_eq!(len, 8);
            assert_eq!(element, Point::LAYOUT);
            assert_eq!(element.fields()[1].offset, offset_of!(Point, y));
        }
        other => panic!("expected an array, found {other:?}"),
    }

    let mut value = Path {
        len: 2,
        closed: 0,
        points: [Point { x: 0, y: 0 }; 8],
    };
    value.points[1] = Point { x: 3, y: -4 };
    let copy = value;
    assert_eq!(copy.points[1], Point { x: 3, y: -4 });
}
