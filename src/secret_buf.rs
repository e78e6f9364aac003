//! Byte buffers for HTTP bodies that may hold sealed plaintext (a write
//! request, a revealed row).
//!
//! Owns: a growable buffer that zeroizes every copy it leaves behind (a
//! plain `Vec` would free its old allocation un-wiped when it grows) and
//! turning it into `Bytes` that zeroize when hyper drops them.
//! Must not: interpret the bytes, or print them anywhere.

use std::io;

use hyper::body::Bytes;
use zeroize::Zeroizing;

/// A byte buffer whose every allocation is zeroized before it is freed.
#[derive(Default)]
pub struct SecretBuf(Zeroizing<Vec<u8>>);

impl SecretBuf {
    pub fn with_capacity(capacity: usize) -> SecretBuf {
        SecretBuf(Zeroizing::new(Vec::with_capacity(capacity)))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }

    /// Appends `bytes`; when the buffer must grow, the contents move to a
    /// new allocation and the old one is wiped.
    pub fn extend(&mut self, bytes: &[u8]) {
        let needed = self.0.len() + bytes.len();
        if needed > self.0.capacity() {
            let mut bigger = Zeroizing::new(Vec::with_capacity(
                needed.max(self.0.capacity() * 2).max(256),
            ));
            bigger.extend_from_slice(&self.0);
            // The old buffer is zeroized (full capacity) when dropped here.
            self.0 = bigger;
        }
        self.0.extend_from_slice(bytes);
    }

    /// The buffer as `Bytes` for a response body; the memory is wiped when
    /// the last reference is dropped.
    pub fn into_bytes(self) -> Bytes {
        Bytes::from_owner(self.0)
    }
}

impl io::Write for SecretBuf {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.extend(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Serializes `value` as JSON into a `SecretBuf`.
pub fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> serde_json::Result<SecretBuf> {
    let mut buf = SecretBuf::with_capacity(1024);
    serde_json::to_writer(&mut buf, value)?;
    Ok(buf)
}

/// Serializes `value` as indented JSON into a `SecretBuf`.
pub fn to_json_pretty<T: serde::Serialize + ?Sized>(value: &T) -> serde_json::Result<SecretBuf> {
    let mut buf = SecretBuf::with_capacity(1024);
    serde_json::to_writer_pretty(&mut buf, value)?;
    Ok(buf)
}

/// Copies a received chunk into `buf` and wipes the chunk itself when this
/// is its only reference (hyper's read buffer may hold other copies we
/// cannot reach).
pub fn take_chunk(buf: &mut SecretBuf, chunk: Bytes) {
    buf.extend(&chunk);
    wipe_chunk(chunk);
}

/// Wipes a received chunk that is not kept, when this is its only
/// reference.
pub fn wipe_chunk(chunk: Bytes) {
    if let Ok(mut owned) = chunk.try_into_mut() {
        zeroize::Zeroize::zeroize(&mut owned[..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_keeps_content() {
        let mut b = SecretBuf::with_capacity(2);
        for i in 0..1000u32 {
            b.extend(&i.to_be_bytes());
        }
        assert_eq!(b.len(), 4000);
        assert_eq!(&b.as_slice()[4..8], &1u32.to_be_bytes());
        let bytes = b.into_bytes();
        assert_eq!(bytes.len(), 4000);
    }
}
