//! Content digests (`sha256:<64 hex>`) and verification while streaming.
//!
//! Everything the store keeps is named by its digest and checked against it as the bytes go
//! by, so a blob that a registry, a disk or a truncated transfer corrupted is refused before
//! anything uses it. Only sha256 is supported: it is the one algorithm registries and image
//! builders use in practice; `sha512` references are refused with a clear error rather than
//! silently mishandled.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

/// A sha256 content digest, kept as its 64 lowercase hex characters.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

/// Why a digest string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("invalid digest {0:?}: expected \"sha256:\" followed by 64 lowercase hex characters")]
    Invalid(String),
    #[error("digest algorithm {algorithm:?} in {input:?} is not supported: only sha256 is")]
    UnsupportedAlgorithm { algorithm: String, input: String },
}

/// Content that does not hash to the digest that names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("content does not match its digest: expected {expected}, got {actual}")]
pub struct Mismatch {
    pub expected: Digest,
    pub actual: Digest,
}

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        let mut d = Digester::new();
        d.update(bytes);
        d.finish()
    }

    /// From 64 hex characters (no `sha256:` prefix).
    pub fn from_hex(hex: &str) -> Result<Digest, DigestError> {
        if hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(Digest {
                hex: hex.to_string(),
            })
        } else {
            Err(DigestError::Invalid(hex.to_string()))
        }
    }

    /// The 64 hex characters, as used in file names.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// Checks that `actual` is this digest.
    pub fn verify(&self, actual: &Digest) -> Result<(), Mismatch> {
        if self == actual {
            Ok(())
        } else {
            Err(Mismatch {
                expected: self.clone(),
                actual: actual.clone(),
            })
        }
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Digest, DigestError> {
        let Some((algorithm, hex)) = s.split_once(':') else {
            return Err(DigestError::Invalid(s.to_string()));
        };
        if algorithm != "sha256" {
            let valid_algo = !algorithm.is_empty()
                && algorithm
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b));
            if valid_algo {
                return Err(DigestError::UnsupportedAlgorithm {
                    algorithm: algorithm.to_string(),
                    input: s.to_string(),
                });
            }
            return Err(DigestError::Invalid(s.to_string()));
        }
        Digest::from_hex(hex).map_err(|_| DigestError::Invalid(s.to_string()))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Incremental sha256 with a byte count.
#[derive(Clone, Default)]
pub struct Digester {
    hasher: Sha256,
    len: u64,
}

impl Digester {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
    }

    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn finish(self) -> Digest {
        let out = self.hasher.finalize();
        let mut hex = String::with_capacity(64);
        for b in out.iter() {
            use std::fmt::Write as _;
            let _ = write!(hex, "{b:02x}");
        }
        Digest { hex }
    }
}

/// A reader that hashes what passes through it.
pub struct HashingReader<R> {
    inner: R,
    digester: Digester,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            digester: Digester::new(),
        }
    }

    /// Reads the rest of the input (so the digest covers all of it), then returns the digest
    /// and the number of bytes read in total.
    pub fn finish(mut self) -> io::Result<(Digest, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        let len = self.digester.len();
        Ok((self.digester.finish(), len))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.digester.update(&buf[..n]);
        Ok(n)
    }
}

/// A writer that hashes what passes through it.
pub struct HashingWriter<W> {
    inner: W,
    digester: Digester,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            digester: Digester::new(),
        }
    }

    /// The inner writer, the digest and the length of what was written.
    pub fn finish(self) -> (W, Digest, u64) {
        let len = self.digester.len();
        (self.inner, self.digester.finish(), len)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.digester.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn of_known_values() {
        assert_eq!(Digest::of(b"").hex(), EMPTY);
        assert_eq!(
            Digest::of(b"abc").to_string(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn parse_table() {
        let ok = format!("sha256:{EMPTY}");
        assert_eq!(ok.parse::<Digest>().unwrap().hex(), EMPTY);
        for bad in [
            "",
            "sha256",
            "sha256:",
            "sha256:abc",
            &format!("sha256:{}", EMPTY.to_uppercase()),
            &format!("SHA256:{EMPTY}"),
            &format!("sha256:{EMPTY}0"),
        ] {
            assert!(
                matches!(bad.parse::<Digest>(), Err(DigestError::Invalid(_))),
                "{bad:?} should be invalid"
            );
        }
        let e = format!("sha512:{EMPTY}").parse::<Digest>().unwrap_err();
        assert!(matches!(e, DigestError::UnsupportedAlgorithm { .. }));
        assert!(e.to_string().contains("only sha256"));
    }

    #[test]
    fn streaming_matches_one_shot() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut r = HashingReader::new(&data[..]);
        let mut first = [0u8; 10];
        r.read_exact(&mut first).unwrap();
        let (d, n) = r.finish().unwrap();
        assert_eq!(n, data.len() as u64);
        assert_eq!(d, Digest::of(&data));

        let mut w = HashingWriter::new(Vec::new());
        w.write_all(&data[..5000]).unwrap();
        w.write_all(&data[5000..]).unwrap();
        let (inner, d2, n2) = w.finish();
        assert_eq!(
            (d2, n2, inner),
            (Digest::of(&data), data.len() as u64, data)
        );
    }

    #[test]
    fn verify_reports_both() {
        let a = Digest::of(b"a");
        let b = Digest::of(b"b");
        let e = a.verify(&b).unwrap_err();
        assert_eq!(e.expected, a);
        assert_eq!(e.actual, b);
        assert!(a.verify(&Digest::of(b"a")).is_ok());
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), a);
    }
}
