//! The provenance record written next to a store the network filled (`<store>.meta.json`): the
//! model, the preprocessing, the image set, and the images that were skipped. Protocols read it
//! to put the model fingerprint into results.json and to treat pairs with a skipped image
//! explicitly; it is tied to its store by the store's source fingerprint.

use crate::error::{Error, Result};
use crate::store::EmbeddingStore;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const KIND: &str = "aifr-eval/embed";

/// The network that made the embeddings, as recorded in results.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub arch: String,
    /// blake3 of the weights and architecture ([`crate::model::FaceEmbedder::fingerprint`]).
    pub fingerprint: String,
    /// Arithmetic the network ran in: f32, f16 or bf16.
    pub dtype: String,
    /// `cpu` or `cuda` (results may differ in the last bits between them).
    pub device: String,
}

/// An image that could not be read or decoded and has no row in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedImage {
    pub key: String,
    pub reason: String,
}

/// How the network saw the images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputInfo {
    pub height: usize,
    pub width: usize,
    pub channels: String,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// Images with landmarks were aligned onto the template; others resized when needed.
    pub aligned_images: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbedMeta {
    pub kind: String,
    pub version: u32,
    /// Hex of the store header's source fingerprint: ties this record to its store.
    pub source_fingerprint: String,
    pub benchmark: String,
    pub images: usize,
    pub images_fingerprint: String,
    pub model: ModelInfo,
    pub input: InputInfo,
    /// Whether the mirrored images were embedded too (the store's flip view).
    pub flip: bool,
    pub skipped_images: Vec<SkippedImage>,
    /// Only in a piece of a sharded run (`embed --shard`): which slice of the images it holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardRecord>,
}

/// What a piece's record says about its place in the whole run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardRecord {
    pub index: usize,
    pub count: usize,
    pub batch_size: usize,
    /// The slice of the image list: rows `first_row .. first_row + rows`.
    pub first_row: usize,
    pub rows: usize,
    /// Hex of the whole (unsharded) run's source fingerprint: model, images, preprocessing.
    pub whole_source_fingerprint: String,
}

pub fn meta_path(store: &Path) -> PathBuf {
    let mut name = store.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".meta.json");
    store.with_file_name(name)
}

impl EmbedMeta {
    pub fn write(&self, store: &Path) -> Result<()> {
        crate::io::write_atomic(&meta_path(store), &crate::io::to_json(self))
    }

    /// The record of `store`, if the network made it; an unrelated or malformed record next to
    /// the store is an error rather than silently ignored.
    pub fn of_store(store: &EmbeddingStore) -> Result<Option<EmbedMeta>> {
        // Rows handed over in memory have no file, so no record beside one.
        if store.in_memory() {
            return Ok(None);
        }
        let path = meta_path(store.path());
        if !path.exists() {
            return Ok(None);
        }
        let text = crate::io::read_text(&path, crate::io::Role::RECORD)?;
        let meta: EmbedMeta = serde_json::from_str(&text)
            .map_err(|e| Error::parse(&path, e.line(), format!("not an aifr-eval embedding record: {e}")))?;
        if meta.kind != KIND || meta.version != 1 {
            return Err(Error::data(
                &path,
                format!("unsupported record kind '{}' version {}", meta.kind, meta.version),
            ));
        }
        if meta.source_fingerprint != crate::store::hex(&store.header().source_fingerprint) {
            return Err(Error::data(
                &path,
                format!(
                    "belongs to another embedding store than {} (source fingerprints differ)",
                    store.path().display()
                ),
            ));
        }
        Ok(Some(meta))
    }
}
