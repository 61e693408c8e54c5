//! Images for image-text-to-text requests: synthetic JPEGs of a requested
//! size, and `data:` URLs for image files.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::{Context, bail};
use base64::Engine as _;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Distinct synthetic images kept per size. Servers that cache processed
/// images by content (vLLM's multimodal cache, for one) can still hit on a
/// repeated image; a pool keeps that rarer without paying a JPEG encode
/// (tens of milliseconds for large sizes) on every request.
pub const POOL_SIZE: u32 = 16;

/// JPEG quality of synthetic images (genai-bench re-encodes with PIL's
/// default, 75; a little higher keeps the noise detail).
const JPEG_QUALITY: u8 = 85;

/// Image formats accepted from files, by magic bytes.
pub fn sniff_mime(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

/// A `data:` URL for image bytes, with the MIME type from their magic
/// bytes; `what` names the image in the error.
pub fn data_url(bytes: &[u8], what: &str) -> anyhow::Result<String> {
    let Some(mime) = sniff_mime(bytes) else {
        bail!("{what} is not a JPEG, PNG, GIF or WebP image (unrecognised file header)");
    };
    Ok(encode_data_url(mime, bytes))
}

fn encode_data_url(mime: &str, bytes: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut url = String::with_capacity(mime.len() + 13 + bytes.len().div_ceil(3) * 4);
    url.push_str("data:");
    url.push_str(mime);
    url.push_str(";base64,");
    b64.encode_string(bytes, &mut url);
    url
}

/// Reads an image file into a `data:` URL.
pub fn file_data_url(path: &Path) -> anyhow::Result<String> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read image '{}'", path.display()))?;
    data_url(&bytes, &format!("'{}'", path.display()))
}

/// A synthetic `width`×`height` RGB JPEG, the same for the same `seed`:
/// a smooth colour field, random shapes and fine noise, so it compresses
/// like a photo rather than like a flat colour.
pub fn generate_jpeg(width: u32, height: u32, seed: u64) -> anyhow::Result<Vec<u8>> {
    if width == 0 || height == 0 || width > 65_535 || height > 65_535 {
        bail!("cannot generate a {width}x{height} image: each side must be 1 to 65535 pixels");
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let (w, h) = (width as usize, height as usize);
    let mut pixels = vec![0u8; w * h * 3];

    // Smooth field: per channel, a base plus two waves along random
    // directions.
    let waves: Vec<[f32; 5]> = (0..3)
        .map(|_| {
            [
                rng.random_range(60.0..190.0),
                rng.random_range(0.5..4.0) * std::f32::consts::TAU / w as f32,
                rng.random_range(0.5..4.0) * std::f32::consts::TAU / h as f32,
                rng.random_range(0.0..std::f32::consts::TAU),
                rng.random_range(20.0..60.0),
            ]
        })
        .collect();
    // The waves separate into a row term and a column term: tabulate them.
    let rows: Vec<Vec<f32>> = waves
        .iter()
        .map(|[base, _, fy, phase, amp]| {
            (0..h)
                .map(|y| base + amp * 0.5 * (fy * y as f32 - phase).cos())
                .collect()
        })
        .collect();
    let cols: Vec<Vec<f32>> = waves
        .iter()
        .map(|[_, fx, _, phase, amp]| {
            (0..w)
                .map(|x| amp * (fx * x as f32 + phase).sin())
                .collect()
        })
        .collect();
    for (y, row) in pixels.chunks_exact_mut(w * 3).enumerate() {
        for (x, px) in row.chunks_exact_mut(3).enumerate() {
            for c in 0..3 {
                px[c] = (rows[c][y] + cols[c][x]).clamp(0.0, 255.0) as u8;
            }
        }
    }

    // Shapes: filled circles and rectangles in random colours.
    for _ in 0..rng.random_range(6..16) {
        let color: [u8; 3] = rng.random();
        let cx = rng.random_range(0..w) as i64;
        let cy = rng.random_range(0..h) as i64;
        let r = rng.random_range(1..=(w.min(h) / 4).max(1)) as i64;
        let circle = rng.random_bool(0.5);
        for y in (cy - r).max(0)..(cy + r).min(h as i64) {
            for x in (cx - r).max(0)..(cx + r).min(w as i64) {
                if circle && (x - cx).pow(2) + (y - cy).pow(2) > r * r {
                    continue;
                }
                let i = (y as usize * w + x as usize) * 3;
                pixels[i..i + 3].copy_from_slice(&color);
            }
        }
    }

    // Fine noise, from a cheap hash so large images stay fast.
    let mut state = seed | 1;
    for p in pixels.iter_mut() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *p = p.saturating_add((state & 15) as u8).saturating_sub(8);
    }

    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, JPEG_QUALITY)
        .encode(
            &pixels,
            width as u16,
            height as u16,
            jpeg_encoder::ColorType::Rgb,
        )
        .context("encoding a synthetic JPEG failed")?;
    Ok(out)
}

/// The `variant`-th (mod [`POOL_SIZE`]) synthetic image of a size as a
/// `data:` URL. Generated on first use and kept for the process, so every
/// sampler of the same size shares the pool.
pub fn synthetic_data_url(width: u32, height: u32, variant: u32) -> anyhow::Result<Arc<str>> {
    type Pool = Mutex<HashMap<(u32, u32, u32), Arc<str>>>;
    static POOL: OnceLock<Pool> = OnceLock::new();
    let key = (width, height, variant % POOL_SIZE);
    let pool = POOL.get_or_init(Default::default);
    if let Some(url) = pool.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(url.clone());
    }
    // Generated without the lock held: a race only generates twice.
    let seed = (u64::from(width) << 40) ^ (u64::from(height) << 20) ^ u64::from(key.2);
    let url: Arc<str> = encode_data_url("image/jpeg", &generate_jpeg(width, height, seed)?).into();
    Ok(pool
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(key)
        .or_insert(url)
        .clone())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Width and height from a baseline JPEG's SOF0 segment.
    pub(crate) fn jpeg_size(bytes: &[u8]) -> Option<(u32, u32)> {
        let mut i = 2;
        while i + 9 < bytes.len() {
            if bytes[i] != 0xFF {
                return None;
            }
            let marker = bytes[i + 1];
            let len = u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]) as usize;
            if marker == 0xC0 {
                let h = u16::from_be_bytes([bytes[i + 5], bytes[i + 6]]);
                let w = u16::from_be_bytes([bytes[i + 7], bytes[i + 8]]);
                return Some((w.into(), h.into()));
            }
            i += 2 + len;
        }
        None
    }

    pub(crate) fn decode_data_url(url: &str) -> (String, Vec<u8>) {
        let rest = url.strip_prefix("data:").unwrap();
        let (mime, b64) = rest.split_once(";base64,").unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        (mime.to_string(), bytes)
    }

    #[test]
    fn generated_jpegs_have_the_requested_size() {
        for (w, h) in [(1, 1), (17, 9), (64, 48)] {
            let jpeg = generate_jpeg(w, h, 5).unwrap();
            assert_eq!(sniff_mime(&jpeg), Some("image/jpeg"));
            assert!(jpeg.ends_with(&[0xFF, 0xD9]));
            assert_eq!(jpeg_size(&jpeg), Some((w, h)));
        }
    }

    #[test]
    fn generation_is_deterministic_per_seed() {
        let a = generate_jpeg(40, 30, 1).unwrap();
        assert_eq!(a, generate_jpeg(40, 30, 1).unwrap());
        assert_ne!(a, generate_jpeg(40, 30, 2).unwrap());
        assert!(generate_jpeg(0, 5, 1).is_err());
    }

    #[test]
    fn pool_urls_are_cached_and_distinct() {
        let a = synthetic_data_url(32, 24, 0).unwrap();
        assert!(Arc::ptr_eq(
            &a,
            &synthetic_data_url(32, 24, POOL_SIZE).unwrap()
        ));
        let b = synthetic_data_url(32, 24, 1).unwrap();
        assert_ne!(a, b);
        let (mime, bytes) = decode_data_url(&a);
        assert_eq!(mime, "image/jpeg");
        assert_eq!(jpeg_size(&bytes), Some((32, 24)));
    }

    #[test]
    fn mime_sniffing() {
        assert_eq!(sniff_mime(b"\x89PNG\r\n\x1a\nrest"), Some("image/png"));
        assert_eq!(sniff_mime(b"GIF89a..."), Some("image/gif"));
        assert_eq!(sniff_mime(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(sniff_mime(b"hello"), None);
        let err = data_url(b"hello", "'x.png'").unwrap_err().to_string();
        assert!(
            err.contains("'x.png'") && err.contains("not a JPEG"),
            "{err}"
        );
        assert!(
            data_url(b"\x89PNG\r\n\x1a\n", "p")
                .unwrap()
                .starts_with("data:image/png;base64,")
        );
    }
}
