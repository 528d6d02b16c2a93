use core::mem::{offset_of, size_of};
use shm_core::layout::{Kind, Primitive};
use shm_core::{Layout, SharedState};

#[derive(SharedState, Clone, Copy)]
#[repr(C)]
struct Grid {
    transform: [[f32; 4]; 4],
    voxels: [[[u8; 2]; 3]; 4],
    _pad: [u8; 8],
}

fn array(layout: &Layout) -> (usize, &'static Layout) {
    match layout.kind {
        Kind::Array { len, element } => (len, element),
        other => panic!("expected an array, found {other:?}"),
    }
}

fn main() {
    let grid = Grid::LAYOUT;
    assert_eq!(grid.size, size_of::<Grid>());
    assert_eq!(grid.size, 64 + 24 + 8);
    assert_eq!(grid.fields()[1].offset, offset_of!(Grid, voxels));

    let (rows, row) = array(grid.fields()[0].layout);
    let (cols, cell) = array(row);
    assert_eq!((rows, cols), (4, 4));
    assert_eq!(row.size, 16);
    assert_eq!(cell.kind, Kind::Primitive(Primitive::F32));

    let (a, plane) = array(grid.fields()[1].layout);
    let (b, line) = array(plane);
    let (c, byte) = array(line);
    assert_eq!((a, b, c), (4, 3, 2));
    assert_eq!(byte.kind, Kind::Primitive(Primitive::U8));
    assert_eq!(grid.fields()[1].layout.to_string(), "[[[u8; 2]; 3]; 4]");
}
