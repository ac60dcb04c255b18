//! C2SP tlog-tiles: tile and entry-bundle paths, tile contents and the entry-bundle encoding.
//!
//! A tile at level `L` and index `N` holds the hashes at tree height `8L` numbered
//! `256N .. 256N + W` (each the root of a complete subtree of `256^L` leaves); a full tile has
//! `W = 256` and lives at `tile/<L>/<N>`, a partial one at `tile/<L>/<N>.p/<W>`. Entry bundles
//! mirror level-0 tiles under `tile/entries/` and hold the entries themselves, each prefixed by
//! its length as a big-endian `u16`.

use crate::merkle::{Hash, Tree};

/// Hashes (or entries) per full tile.
pub const TILE_WIDTH: u64 = 256;
/// Tree height covered by one tile level.
pub const TILE_HEIGHT: u32 = 8;

/// A malformed entry bundle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The bundle ends inside an entry.
    #[error("entry bundle is truncated in entry {position}")]
    Truncated {
        /// The entry's position inside the bundle (0-based).
        position: usize,
    },
    /// An entry longer than 65,535 bytes.
    #[error("entry {position} is longer than 65535 bytes")]
    TooLong {
        /// The entry's position inside the bundle.
        position: usize,
    },
}

/// Encode a tile index `N` as path elements: `x001/x234/067` for 1234067.
pub fn encode_index(n: u64) -> String {
    let mut groups = Vec::new();
    let mut n = n;
    loop {
        groups.push(n % 1000);
        n /= 1000;
        if n == 0 {
            break;
        }
    }
    let last = groups.len() - 1;
    groups
        .iter()
        .rev()
        .enumerate()
        .map(|(i, g)| {
            if i == last {
                format!("{g:03}")
            } else {
                format!("x{g:03}")
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn with_width(base: String, width: u64) -> String {
    if width >= TILE_WIDTH {
        base
    } else {
        format!("{base}.p/{width}")
    }
}

/// `tile/<L>/<N>[.p/<W>]`; `width` 256 means a full tile.
pub fn tile_path(level: u32, index: u64, width: u64) -> String {
    with_width(format!("tile/{level}/{}", encode_index(index)), width)
}

/// `tile/entries/<N>[.p/<W>]`; `width` 256 means a full bundle.
pub fn bundle_path(index: u64, width: u64) -> String {
    with_width(format!("tile/entries/{}", encode_index(index)), width)
}

/// Number of complete hashes at tile level `level` in a tree of `size` leaves.
pub fn hashes_at_level(size: u64, level: u32) -> u64 {
    size.checked_shr(TILE_HEIGHT * level).unwrap_or(0)
}

/// One tile to publish: where, and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TileRef {
    /// Tile level.
    pub level: u32,
    /// Tile index within the level.
    pub index: u64,
    /// Number of hashes (1 to 256).
    pub width: u64,
}

impl TileRef {
    /// The tile's path.
    pub fn path(&self) -> String {
        tile_path(self.level, self.index, self.width)
    }
}

/// The tiles that change when the tree grows from `old` to `new` leaves: the full tiles that
/// completed in between and, for `new`, the partial tile at the right edge of each level.
pub fn tiles_between(old: u64, new: u64) -> Vec<TileRef> {
    let mut out = Vec::new();
    let mut level = 0u32;
    loop {
        let count_new = hashes_at_level(new, level);
        if count_new == 0 {
            break;
        }
        let count_old = hashes_at_level(old, level);
        for index in count_old / TILE_WIDTH..count_new / TILE_WIDTH {
            out.push(TileRef {
                level,
                index,
                width: TILE_WIDTH,
            });
        }
        let rem = count_new % TILE_WIDTH;
        if rem > 0 {
            out.push(TileRef {
                level,
                index: count_new / TILE_WIDTH,
                width: rem,
            });
        }
        level += 1;
    }
    out
}

/// What a tlog-tiles object path names: a tile or an entry bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectPath {
    /// `tile/<L>/<N>[.p/<W>]`.
    Tile(TileRef),
    /// `tile/entries/<N>[.p/<W>]`.
    Bundle {
        /// Bundle index.
        index: u64,
        /// Number of entries (1 to 256).
        width: u64,
    },
}

/// Parse a tile or bundle path, strictly: only the spelling [`tile_path`] and [`bundle_path`]
/// write (levels 0 to 63, widths 1 to 255 behind `.p/`), so every name a server would answer
/// for maps to exactly one object. Anything else (a `.tmp` file, a stray name) is `None`.
pub fn parse_object_path(path: &str) -> Option<ObjectPath> {
    let rest = path.strip_prefix("tile/")?;
    let (kind, rest) = rest.split_once('/')?;
    let (index_part, width) = match rest.split_once(".p/") {
        Some((i, w)) => (
            i,
            w.parse::<u64>()
                .ok()
                .filter(|w| (1..TILE_WIDTH).contains(w))?,
        ),
        None => (rest, TILE_WIDTH),
    };
    let mut index = 0u64;
    for group in index_part.split('/') {
        let digits = group.strip_prefix('x').unwrap_or(group);
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let g: u64 = digits.parse().ok()?;
        index = index.checked_mul(1000)?.checked_add(g)?;
    }
    let parsed = if kind == "entries" {
        ObjectPath::Bundle { index, width }
    } else {
        let level: u32 = kind.parse().ok().filter(|l| *l < 64)?;
        ObjectPath::Tile(TileRef {
            level,
            index,
            width,
        })
    };
    // Round trip: rejects leading zeros, a missing or misplaced `x`, `+1` and the like.
    let canonical = match &parsed {
        ObjectPath::Tile(t) => t.path(),
        ObjectPath::Bundle { index, width } => bundle_path(*index, *width),
    };
    (canonical == path).then_some(parsed)
}

/// The bytes of a tile, from the tree's stored hashes; `None` if the tree is too small.
pub fn tile_bytes(tree: &Tree, tile: &TileRef) -> Option<Vec<u8>> {
    let row = tree.level(usize::try_from(tile.level * TILE_HEIGHT).ok()?);
    let start = usize::try_from(tile.index.checked_mul(TILE_WIDTH)?).ok()?;
    let end = start.checked_add(usize::try_from(tile.width).ok()?)?;
    let hashes: &[Hash] = row.get(start..end)?;
    Some(hashes.iter().flat_map(|h| h.iter().copied()).collect())
}

/// Encode entries as a bundle: each prefixed with its big-endian `u16` length.
pub fn encode_bundle<'a>(
    entries: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<u8>, BundleError> {
    let mut out = Vec::new();
    for (position, e) in entries.into_iter().enumerate() {
        let len = u16::try_from(e.len()).map_err(|_| BundleError::TooLong { position })?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(e);
    }
    Ok(out)
}

/// Decode a bundle into its entries.
pub fn decode_bundle(bytes: &[u8]) -> Result<Vec<&[u8]>, BundleError> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let position = out.len();
        let (Some(&hi), Some(&lo), Some(tail)) = (rest.first(), rest.get(1), rest.get(2..)) else {
            return Err(BundleError::Truncated { position });
        };
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        let (Some(entry), Some(after)) = (tail.get(..len), tail.get(len..)) else {
            return Err(BundleError::Truncated { position });
        };
        out.push(entry);
        rest = after;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_encoding_follows_the_spec() {
        assert_eq!(encode_index(0), "000");
        assert_eq!(encode_index(67), "067");
        assert_eq!(encode_index(1000), "x001/000");
        assert_eq!(encode_index(1_234_067), "x001/x234/067");
        assert_eq!(tile_path(0, 1_234_067, 256), "tile/0/x001/x234/067");
        assert_eq!(tile_path(1, 1_234_067, 8), "tile/1/x001/x234/067.p/8");
        assert_eq!(bundle_path(5, 3), "tile/entries/005.p/3");
    }

    #[test]
    fn tiles_between_sizes() {
        let t = tiles_between(0, 70_000);
        // level 0: 273 full + partial of 112; level 1: 1 full + partial of 17; level 2: partial of 1
        assert_eq!(t.iter().filter(|t| t.level == 0).count(), 274);
        assert!(t.contains(&TileRef {
            level: 0,
            index: 273,
            width: 112
        }));
        assert!(t.contains(&TileRef {
            level: 1,
            index: 0,
            width: 256
        }));
        assert!(t.contains(&TileRef {
            level: 1,
            index: 1,
            width: 17
        }));
        assert_eq!(
            t.iter().filter(|t| t.level == 2).collect::<Vec<_>>(),
            vec![&TileRef {
                level: 2,
                index: 0,
                width: 1
            }]
        );
        let u = tiles_between(300, 600);
        assert_eq!(
            u,
            vec![
                TileRef {
                    level: 0,
                    index: 1,
                    width: 256
                },
                TileRef {
                    level: 0,
                    index: 2,
                    width: 88
                },
                TileRef {
                    level: 1,
                    index: 0,
                    width: 2
                },
            ]
        );
    }

    #[test]
    fn object_paths_parse_strictly() {
        for (level, index, width) in [(0, 0, 1), (0, 1_234_067, 256), (5, 999, 255), (63, 0, 7)] {
            let t = TileRef {
                level,
                index,
                width,
            };
            assert_eq!(parse_object_path(&t.path()), Some(ObjectPath::Tile(t)));
        }
        assert_eq!(
            parse_object_path("tile/entries/x001/002.p/7"),
            Some(ObjectPath::Bundle {
                index: 1002,
                width: 7
            })
        );
        for bad in [
            "checkpoint",
            "tile/0/000.tmp",
            "tile/0/000.p/1.tmp",
            "tile/0/000.p/0",
            "tile/0/000.p/256",
            "tile/0/000.p/01",
            "tile/00/000",
            "tile/64/000",
            "tile/0/00",
            "tile/0/x000/001",
            "tile/0/001/002",
            "tile/0/x001",
            "tile/entries/000.p/+1",
            "tile/0/000/",
            "tile/level/000",
        ] {
            assert_eq!(parse_object_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn bundle_round_trip_and_truncation() {
        let es: Vec<&[u8]> = vec![b"a", b"", b"hello"];
        let b = encode_bundle(es.iter().copied()).unwrap();
        assert_eq!(decode_bundle(&b).unwrap(), es);
        for cut in 1..b.len() {
            let d = decode_bundle(&b[..cut]);
            assert!(d.is_err() || d.unwrap().len() < 3);
        }
        assert!(encode_bundle([vec![0u8; 70_000].as_slice()]).is_err());
    }
}
