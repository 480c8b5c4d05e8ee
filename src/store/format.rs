//! Byte layout of the store header and the row encodings.

pub const HEADER_LEN: usize = 4096;
const MAGIC: &[u8; 8] = b"AIFREMB\0";
const VERSION: u32 = 1;
/// "COMP": written last, after everything else is on disk.
pub const STATE_COMPLETE: u32 = 0x434F_4D50;
/// Bytes covered by the header's own hash.
const HASHED: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F32 = 1,
    F16 = 2,
}

impl DType {
    pub fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 => 2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
        }
    }

    pub fn encode(self, values: &[f32]) -> Vec<u8> {
        match self {
            DType::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            DType::F16 => values.iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect(),
        }
    }

    pub fn decode(self, bytes: &[u8], out: &mut [f32]) {
        match self {
            DType::F32 => {
                for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                    *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                }
            }
            DType::F16 => {
                for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                    *o = half::f16::from_le_bytes([c[0], c[1]]).to_f32();
                }
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreHeader {
    pub dtype: DType,
    pub dim: u32,
    /// 1 = original images only, 2 = original + horizontal flip.
    pub views: u32,
    pub count: u64,
    pub data_offset: u64,
    pub keys_offset: u64,
    pub keys_len: u64,
    /// Identifies the inputs the store was made from (files, model), for cache reuse.
    pub source_fingerprint: [u8; 32],
    /// blake3 of everything after the header.
    pub content_hash: [u8; 32],
    pub state: u32,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

impl StoreHeader {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_LEN];
        b[0..8].copy_from_slice(MAGIC);
        b[8..12].copy_from_slice(&VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&(self.dtype as u32).to_le_bytes());
        b[16..20].copy_from_slice(&self.dim.to_le_bytes());
        b[20..24].copy_from_slice(&self.views.to_le_bytes());
        b[24..32].copy_from_slice(&self.count.to_le_bytes());
        b[32..40].copy_from_slice(&self.data_offset.to_le_bytes());
        b[40..48].copy_from_slice(&self.keys_offset.to_le_bytes());
        b[48..56].copy_from_slice(&self.keys_len.to_le_bytes());
        b[56..88].copy_from_slice(&self.source_fingerprint);
        b[88..120].copy_from_slice(&self.content_hash);
        b[120..124].copy_from_slice(&self.state.to_le_bytes());
        let h = blake3::hash(&b[..HASHED]);
        b[HASHED..HASHED + 32].copy_from_slice(h.as_bytes());
        b
    }

    /// Parses and checks a header; the error says what is wrong (used with the file name).
    pub fn decode(b: &[u8]) -> Result<Self, String> {
        if b.len() < HEADER_LEN {
            return Err(format!("{} bytes is too short for an embedding store (header is {HEADER_LEN})", b.len()));
        }
        if &b[0..8] != MAGIC {
            return Err("not an aifr-eval embedding store (bad magic at byte 0)".into());
        }
        let version = u32_at(b, 8);
        if version != VERSION {
            return Err(format!("store format version {version} is not supported (expected {VERSION})"));
        }
        if blake3::hash(&b[..HASHED]).as_bytes() != &b[HASHED..HASHED + 32] {
            return Err("header checksum mismatch: the store header is corrupted".into());
        }
        let dtype = match u32_at(b, 12) {
            1 => DType::F32,
            2 => DType::F16,
            d => return Err(format!("unknown dtype code {d} at byte 12")),
        };
        let mut a = [0u8; 32];
        let mut c = [0u8; 32];
        a.copy_from_slice(&b[56..88]);
        c.copy_from_slice(&b[88..120]);
        let h = StoreHeader {
            dtype,
            dim: u32_at(b, 16),
            views: u32_at(b, 20),
            count: u64_at(b, 24),
            data_offset: u64_at(b, 32),
            keys_offset: u64_at(b, 40),
            keys_len: u64_at(b, 48),
            source_fingerprint: a,
            content_hash: c,
            state: u32_at(b, 120),
        };
        let data_len = (h.dtype.size() as u64)
            .checked_mul(h.dim as u64)
            .and_then(|x| x.checked_mul(h.views as u64))
            .and_then(|x| x.checked_mul(h.count));
        if h.dim == 0 || !(1..=2).contains(&h.views) || h.data_offset != HEADER_LEN as u64 {
            return Err(format!(
                "inconsistent header (dim {}, views {}, data offset {})",
                h.dim, h.views, h.data_offset
            ));
        }
        if data_len.and_then(|d| d.checked_add(h.data_offset)) != Some(h.keys_offset)
            || h.keys_offset.checked_add(h.keys_len).is_none()
        {
            return Err("inconsistent header: section offsets do not match the row count".into());
        }
        Ok(h)
    }
}
