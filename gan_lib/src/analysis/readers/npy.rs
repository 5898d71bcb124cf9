//! `.npy` arrays of digits (NumPy's format): uint8, float32 or float64, in [0, 255], [0, 1]
//! or [-1, 1].

use std::path::Path;

use crate::analysis::{source_error, AnalysisError};
use crate::data::IMAGE_PIXELS;

/// The largest `.npy` file read (100,000 digits as float64 take 627 MB).
const MAX_NPY_BYTES: u64 = 1 << 30;

/// Reads a `.npy` array of digits.
pub(super) fn read_npy(path: &Path) -> Result<Vec<u8>, AnalysisError> {
    let bytes = crate::files::read_at_most(path, MAX_NPY_BYTES)
        .map_err(|e| source_error(path, format!("cannot read: {e}")))?
        .ok_or_else(|| {
            let limit = MAX_NPY_BYTES >> 20;
            source_error(
                path,
                format!("larger than {limit} MiB, too large to analyse"),
            )
        })?;
    parse_npy(&bytes)
        .map_err(|message| source_error(path, format!("not a digits .npy array: {message}")))
}

/// Parses the bytes of a `.npy` array of digits; the error says what is wrong.
pub fn parse_npy(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let header = NpyHeader::parse(bytes)?;
    let shape = &header.shape;
    let count = shape.first().copied().unwrap_or(0);
    let image_size = shape
        .iter()
        .skip(1)
        .try_fold(1usize, |size, &d| size.checked_mul(d));
    if image_size != Some(IMAGE_PIXELS) || shape.len() < 2 {
        return Err(format!("shape {shape:?} does not hold 28x28 images"));
    }
    let Some(needed) = count.checked_mul(IMAGE_PIXELS) else {
        return Err(format!("shape {shape:?} is impossibly large"));
    };
    let data = &bytes[header.data_start..];
    let values: Vec<f32> = match header.descr.as_str() {
        "|u1" | "<u1" | "u1" => data.iter().map(|&b| b as f32).collect(),
        "<f4" => data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect(),
        "<f8" => data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
            .collect(),
        other => {
            return Err(format!(
                "element type {other} (expected uint8, float32 or float64)"
            ))
        }
    };
    if values.len() != needed {
        return Err(format!(
            "shape {shape:?} needs {needed} values, the file holds {}",
            values.len()
        ));
    }
    to_pixels(values, header.descr.contains('u'))
}

/// What a `.npy` header says: the element type, the shape, and where the values start.
struct NpyHeader {
    descr: String,
    shape: Vec<usize>,
    data_start: usize,
}

impl NpyHeader {
    fn parse(bytes: &[u8]) -> Result<NpyHeader, String> {
        if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
            return Err("no NumPy magic".into());
        }
        let (header_len, start): (usize, usize) = match bytes[6] {
            1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
            2 | 3 if bytes.len() >= 12 => (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            ),
            _ => return Err("unknown format version".into()),
        };
        let header = bytes
            .get(start..start.saturating_add(header_len))
            .ok_or("truncated header")?;
        let header = String::from_utf8_lossy(header);
        let field = |key: &str| -> Option<String> {
            let at = header.find(&format!("'{key}'"))? + key.len() + 2;
            let rest = header[at..].trim_start_matches([':', ' ']);
            Some(if rest.starts_with('(') {
                rest[..rest.find(')')? + 1].to_owned()
            } else {
                rest[..rest.find(',')?].trim_matches(['\'', ' ']).to_owned()
            })
        };
        let descr = field("descr").ok_or("no descr")?;
        if field("fortran_order").as_deref() == Some("True") {
            return Err("Fortran order is not supported".into());
        }
        let shape = field("shape")
            .ok_or("no shape")?
            .trim_matches(['(', ')'])
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.trim().parse::<usize>())
            .collect::<Result<_, _>>()
            .map_err(|_| "unreadable shape")?;
        Ok(NpyHeader {
            descr,
            shape,
            data_start: start + header_len,
        })
    }
}

/// Values as bytes: integers as they are; floats in [0, 1] or [-1, 1] stretched to [0, 255].
fn to_pixels(values: Vec<f32>, integers: bool) -> Result<Vec<u8>, String> {
    if values.iter().any(|v| !v.is_finite()) {
        return Err("contains NaN or infinite values".into());
    }
    let (min, max) = values
        .iter()
        .fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let to_byte: Box<dyn Fn(f32) -> u8> = if integers || max > 1.0 {
        Box::new(|v| v.round().clamp(0.0, 255.0) as u8)
    } else if min < 0.0 {
        Box::new(|v| ((v + 1.0) * 127.5).round().clamp(0.0, 255.0) as u8)
    } else {
        Box::new(|v| (v * 255.0).round().clamp(0.0, 255.0) as u8)
    };
    Ok(values.into_iter().map(to_byte).collect())
}
