//! insightface `.bin` packs as a pair benchmark: image i of the pack has key `i` (decimal), pair
//! i is images 2i and 2i+1, folds are the file order cut into contiguous blocks.

use super::insightface_bin::parse_bin;
use super::{contiguous_fold, Pair, PairBenchmark};
use crate::error::{Error, Result};
use memmap2::Mmap;
use std::path::Path;

pub fn read_pairs(path: &Path, folds: usize) -> Result<PairBenchmark> {
    let (file, _) = crate::io::open_input(path, crate::io::Role::MAPPED)?;
    // SAFETY: read-only mapping of a file we only parse; packs are not modified while read.
    let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::read(path, e))?;
    let pack = parse_bin(&map).map_err(|e| Error::data(path, format!("not a valid insightface .bin pack: {e}")))?;
    let n = pack.num_pairs();
    if n < folds {
        return Err(Error::data(path, format!("{n} pairs cannot be cut into {folds} folds")));
    }
    let keys = (0..2 * n).map(|i| i.to_string()).collect();
    let pairs = pack
        .issame
        .iter()
        .enumerate()
        .map(|(i, &genuine)| Pair {
            a: 2 * i as u32,
            b: 2 * i as u32 + 1,
            genuine,
            fold: contiguous_fold(i, n, folds) as u32,
        })
        .collect();
    Ok(PairBenchmark {
        groups: None,
        keys,
        identities: None,
        ages: None,
        pairs,
        folds,
        keys_are_row_order: true,
        sources: vec![path.to_path_buf()],
    })
}
