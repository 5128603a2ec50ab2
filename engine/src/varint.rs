//! LEB128 varints and zigzag signed deltas: the compact integers of entry layout 2 and of
//! hint files.

use crate::format::DecodeError;

/// Maps a signed delta to an unsigned one, small magnitudes to small numbers.
#[inline]
pub(crate) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// The inverse of [`zigzag`].
#[inline]
pub(crate) fn unzigzag(v: u64) -> i64 {
    (v >> 1) as i64 ^ -((v & 1) as i64)
}

/// Appends `v` as a varint: seven bits per byte, low bits first.
#[inline]
pub(crate) fn put(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Bytes [`put`] writes for `v`.
#[inline]
pub(crate) fn len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// Reads a varint from the front of `b`, advancing it.
///
/// # Errors
/// [`DecodeError::Truncated`] if `b` ends inside it, [`DecodeError::BadField`] past 64 bits
/// or where it is longer than [`put`] writes it (a zero last byte after others): every value
/// has one encoding, so decoded records re-encode to the same bytes and lengths.
#[inline]
pub(crate) fn take(b: &mut &[u8]) -> Result<u64, DecodeError> {
    // Most fields are below 128: one byte, decided here without the loop.
    match b.split_first() {
        Some((&byte, rest)) if byte < 0x80 => {
            *b = rest;
            Ok(u64::from(byte))
        }
        _ => take_long(b),
    }
}

/// [`take`] of a varint of more than one byte (or none).
#[inline(never)]
fn take_long(b: &mut &[u8]) -> Result<u64, DecodeError> {
    let mut v = 0u64;
    for (i, &byte) in b.iter().enumerate().take(10) {
        let bits = u64::from(byte & 0x7f);
        if i == 9 && byte > 1 {
            return Err(DecodeError::BadField);
        }
        v |= bits << (7 * i);
        if byte < 0x80 {
            if byte == 0 && i > 0 {
                return Err(DecodeError::BadField);
            }
            *b = &b[i + 1..];
            return Ok(v);
        }
    }
    Err(if b.len() < 10 {
        DecodeError::Truncated
    } else {
        DecodeError::BadField
    })
}

/// Takes `len` bytes from the front of `b`.
///
/// # Errors
/// [`DecodeError::Truncated`] if fewer are there.
#[inline]
pub(crate) fn take_bytes<'a>(b: &mut &'a [u8], len: u64) -> Result<&'a [u8], DecodeError> {
    let len = usize::try_from(len).map_err(|_| DecodeError::Truncated)?;
    if b.len() < len {
        return Err(DecodeError::Truncated);
    }
    let (taken, rest) = b.split_at(len);
    *b = rest;
    Ok(taken)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_match_what_is_written() {
        for v in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut out = Vec::new();
            put(&mut out, v);
            assert_eq!(out.len(), len(v), "{v}");
            let mut b = &out[..];
            assert_eq!(take(&mut b), Ok(v));
            assert!(b.is_empty());
        }
        let mut padded: &[u8] = &[0x81, 0x00];
        assert_eq!(take(&mut padded), Err(DecodeError::BadField));
        for d in [0, 1, -1, i64::MAX, i64::MIN] {
            assert_eq!(unzigzag(zigzag(d)), d);
        }
    }
}
