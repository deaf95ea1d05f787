//! Decompression that never produces more than a chunk can hold. zarrs'
//! own codecs trust the encoded data: its zstd codec allocates whatever a
//! frame states it decompresses to before reading a byte (a chunk stating
//! terabytes aborted the process: a worker, or the embedded client), its
//! gzip codec inflates to the end however large that is (deflate expands up
//! to a thousandfold), and its blosc codec allocates what the header states.
//! These wrappers, registered in zarrs' runtime registry (which comes before
//! the built-in codecs), decode into at most the size the codec chain
//! expects at that step and refuse data that says or makes more. Encoding,
//! configuration and names are the built-in codecs'.

use std::borrow::Cow;
use std::io::Read;
use std::sync::{Arc, Once};

use zarrs::array::codec::api::{
    CodecRuntimePluginV2, CodecRuntimePluginV3, register_codec_v2, register_codec_v3,
};
use zarrs::array::codec::{BloscCodec, GzipCodec, ZstdCodec};
use zarrs::array::{
    ArrayBytesRaw, BytesRepresentation, BytesToBytesCodecTraits, Codec, CodecError,
    CodecMetadataOptions, CodecOptions, CodecTraits, CodecTraitsV2, CodecTraitsV3,
    RecommendedConcurrency,
};
use zarrs::metadata::Configuration;
use zarrs::plugin::{ExtensionName, PluginCreateError, ZarrVersion};

/// The compressors whose decoding is capped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Zstd,
    Gzip,
    Blosc,
}

impl Kind {
    fn of(name: &str) -> Option<Kind> {
        match name.strip_prefix("numcodecs.").unwrap_or(name) {
            "zstd" => Some(Kind::Zstd),
            "gzip" => Some(Kind::Gzip),
            "blosc" => Some(Kind::Blosc),
            _ => None,
        }
    }
}

/// Registers the capped codecs (v2 and v3), once per process.
pub(super) fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for kind in [Kind::Zstd, Kind::Gzip, Kind::Blosc] {
            let is = move |name: &str| Kind::of(name) == Some(kind);
            let _ = register_codec_v3(CodecRuntimePluginV3::new(is, move |m| {
                capped(kind, create_v3(kind, m)?)
            }));
            let _ = register_codec_v2(CodecRuntimePluginV2::new(is, move |m| {
                capped(kind, create_v2(kind, m)?)
            }));
        }
    });
}

fn create_v3(kind: Kind, m: &zarrs::metadata::v3::MetadataV3) -> Result<Codec, PluginCreateError> {
    match kind {
        Kind::Zstd => <ZstdCodec as CodecTraitsV3>::create(m),
        Kind::Gzip => <GzipCodec as CodecTraitsV3>::create(m),
        Kind::Blosc => <BloscCodec as CodecTraitsV3>::create(m),
    }
}

fn create_v2(kind: Kind, m: &zarrs::metadata::v2::MetadataV2) -> Result<Codec, PluginCreateError> {
    match kind {
        Kind::Zstd => <ZstdCodec as CodecTraitsV2>::create(m),
        Kind::Gzip => <GzipCodec as CodecTraitsV2>::create(m),
        Kind::Blosc => <BloscCodec as CodecTraitsV2>::create(m),
    }
}

fn capped(kind: Kind, codec: Codec) -> Result<Codec, PluginCreateError> {
    match codec {
        Codec::BytesToBytes(inner) => Ok(Codec::BytesToBytes(Arc::new(Capped { inner, kind }))),
        _ => Err(PluginCreateError::Other(format!(
            "{kind:?} is a bytes-to-bytes codec"
        ))),
    }
}

/// One of zarrs' compressors with a bounded decoder.
#[derive(Debug)]
struct Capped {
    inner: Arc<dyn BytesToBytesCodecTraits>,
    kind: Kind,
}

/// Decodes zstd `encoded` into at most `most` bytes: frames stating more
/// are refused before anything is allocated, and output beyond it is an error.
fn zstd_capped(encoded: &[u8], most: usize) -> Result<Vec<u8>, CodecError> {
    if let Some(stated) = zstd::bulk::Decompressor::upper_bound(encoded)
        && stated > most
    {
        return Err(CodecError::Other(format!(
            "corrupt zstd data: it says it decompresses to {stated} bytes, more than the \
             {most} this chunk holds"
        )));
    }
    zstd::bulk::decompress(encoded, most).map_err(|e| {
        CodecError::Other(format!(
            "corrupt zstd data (it does not decompress into the {most} bytes this chunk \
             holds): {e}"
        ))
    })
}

/// Inflates gzip `encoded`, stopping one byte past `most`: a stream that
/// gets there is refused, whatever it would have grown to.
fn gzip_capped(encoded: &[u8], most: usize) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    let limit = u64::try_from(most).unwrap_or(u64::MAX).saturating_add(1);
    flate2::read::GzDecoder::new(encoded)
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| CodecError::Other(format!("corrupt gzip data: {e}")))?;
    if out.len() > most {
        return Err(CodecError::Other(format!(
            "corrupt gzip data: it decompresses to more than the {most} bytes this chunk holds"
        )));
    }
    Ok(out)
}

/// The uncompressed size a blosc header states (bytes 4..8, little endian),
/// which blosc allocates before decompressing.
fn blosc_stated(encoded: &[u8]) -> Option<u64> {
    let bytes: [u8; 4] = encoded.get(4..8)?.try_into().ok()?;
    Some(u64::from(u32::from_le_bytes(bytes)))
}

impl Capped {
    fn decode_within<'a>(
        &self,
        encoded: ArrayBytesRaw<'a>,
        most: usize,
        representation: &BytesRepresentation,
        options: &CodecOptions,
    ) -> Result<ArrayBytesRaw<'a>, CodecError> {
        match self.kind {
            Kind::Zstd => zstd_capped(&encoded, most).map(Cow::Owned),
            Kind::Gzip => gzip_capped(&encoded, most).map(Cow::Owned),
            Kind::Blosc => match blosc_stated(&encoded) {
                Some(stated) if stated > most as u64 => Err(CodecError::Other(format!(
                    "corrupt blosc data: it says it decompresses to {stated} bytes, more than \
                     the {most} this chunk holds"
                ))),
                _ => self.inner.decode(encoded, representation, options),
            },
        }
    }
}

impl ExtensionName for Capped {
    fn name(&self, version: ZarrVersion) -> Option<Cow<'static, str>> {
        self.inner.name(version)
    }
}

impl CodecTraits for Capped {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn configuration(
        &self,
        version: ZarrVersion,
        options: &CodecMetadataOptions,
    ) -> Option<Configuration> {
        self.inner.configuration(version, options)
    }

    fn partial_decoder_capability(&self) -> zarrs::array::codec::api::PartialDecoderCapability {
        self.inner.partial_decoder_capability()
    }

    fn partial_encoder_capability(&self) -> zarrs::array::codec::api::PartialEncoderCapability {
        self.inner.partial_encoder_capability()
    }
}

impl BytesToBytesCodecTraits for Capped {
    fn into_dyn(self: Arc<Self>) -> Arc<dyn BytesToBytesCodecTraits> {
        self
    }

    fn recommended_concurrency(
        &self,
        decoded_representation: &BytesRepresentation,
    ) -> Result<RecommendedConcurrency, CodecError> {
        self.inner.recommended_concurrency(decoded_representation)
    }

    fn encoded_representation(
        &self,
        decoded_representation: &BytesRepresentation,
    ) -> BytesRepresentation {
        self.inner.encoded_representation(decoded_representation)
    }

    fn encode<'a>(
        &self,
        decoded_value: ArrayBytesRaw<'a>,
        options: &CodecOptions,
    ) -> Result<ArrayBytesRaw<'a>, CodecError> {
        self.inner.encode(decoded_value, options)
    }

    fn decode<'a>(
        &self,
        encoded_value: ArrayBytesRaw<'a>,
        decoded_representation: &BytesRepresentation,
        options: &CodecOptions,
    ) -> Result<ArrayBytesRaw<'a>, CodecError> {
        match decoded_representation {
            BytesRepresentation::FixedSize(n) | BytesRepresentation::BoundedSize(n) => {
                let most = usize::try_from(*n).unwrap_or(usize::MAX);
                self.decode_within(encoded_value, most, decoded_representation, options)
            }
            // Variable-length data has no bound to hold it to.
            BytesRepresentation::UnboundedSize => {
                self.inner
                    .decode(encoded_value, decoded_representation, options)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame header stating `size` bytes, then one empty raw block.
    fn stating(size: u64) -> Vec<u8> {
        let mut frame = vec![0x28, 0xB5, 0x2F, 0xFD, 0b1100_0000, 0x50];
        frame.extend_from_slice(&size.to_le_bytes());
        frame.extend_from_slice(&[0x01, 0x00, 0x00]);
        frame
    }

    #[test]
    fn a_frame_decodes_into_its_chunk_and_no_further() {
        let data = vec![7u8; 4096];
        let frame = zstd::bulk::compress(&data, 3).unwrap();
        assert_eq!(zstd_capped(&frame, 4096).unwrap(), data);
        assert!(zstd_capped(&frame, 4095).is_err());
    }

    #[test]
    fn huge_stated_sizes_are_refused_wherever_the_frame_is() {
        let e = zstd_capped(&stating(1 << 40), 1 << 20).unwrap_err();
        assert!(e.to_string().contains("1099511627776"), "{e}");
        // Behind a skippable frame, which the size bound reads past.
        let mut hidden = vec![0x50, 0x2A, 0x4D, 0x18, 0, 0, 0, 0];
        hidden.extend(stating(1 << 40));
        assert!(zstd_capped(&hidden, 1 << 20).is_err());
        // Many small frames adding up to more than the chunk.
        let many: Vec<u8> = (0..64).flat_map(|_| stating(1 << 20)).collect();
        assert!(zstd_capped(&many, 1 << 20).is_err());
    }

    fn codec(kind: Kind, metadata: &str) -> Arc<dyn BytesToBytesCodecTraits> {
        let metadata = serde_json::from_str(metadata).unwrap();
        match capped(kind, create_v3(kind, &metadata).unwrap()).unwrap() {
            Codec::BytesToBytes(c) => c,
            _ => unreachable!(),
        }
    }

    fn decode(
        c: &Arc<dyn BytesToBytesCodecTraits>,
        encoded: &[u8],
        most: u64,
    ) -> Result<Vec<u8>, CodecError> {
        c.decode(
            Cow::Borrowed(encoded),
            &BytesRepresentation::FixedSize(most),
            &CodecOptions::default(),
        )
        .map(Cow::into_owned)
    }

    #[test]
    fn gzip_inflates_into_its_chunk_and_no_further() {
        let gzip = codec(
            Kind::Gzip,
            r#"{"name": "gzip", "configuration": {"level": 5}}"#,
        );
        let data: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8).collect();
        let encoded = gzip
            .encode(Cow::Borrowed(&data), &CodecOptions::default())
            .unwrap();
        assert_eq!(decode(&gzip, &encoded, 4096).unwrap(), data);
        let e = decode(&gzip, &encoded, 4095).unwrap_err();
        assert!(e.to_string().contains("more than the 4095 bytes"), "{e}");
        // 64 MiB of zeros deflates to about 64 KiB: refused after 1 MiB.
        let zeros = vec![0u8; 64 << 20];
        let bomb = gzip
            .encode(Cow::Borrowed(&zeros), &CodecOptions::default())
            .unwrap();
        assert!(bomb.len() < 1 << 20);
        let e = decode(&gzip, &bomb, 1 << 20).unwrap_err();
        assert!(e.to_string().contains("corrupt gzip data"), "{e}");
        assert!(decode(&gzip, b"not gzip", 4096).is_err());
    }

    #[test]
    fn blosc_headers_stating_more_than_the_chunk_are_refused() {
        let blosc = codec(
            Kind::Blosc,
            r#"{"name": "blosc", "configuration": {"cname": "lz4", "clevel": 5,
                "shuffle": "noshuffle", "typesize": 1, "blocksize": 0}}"#,
        );
        let data: Vec<u8> = (0..4096u32).map(|i| (i % 13) as u8).collect();
        let encoded = blosc
            .encode(Cow::Borrowed(&data), &CodecOptions::default())
            .unwrap();
        assert_eq!(blosc_stated(&encoded), Some(4096));
        assert_eq!(decode(&blosc, &encoded, 4096).unwrap(), data);
        let e = decode(&blosc, &encoded, 4095).unwrap_err();
        assert!(e.to_string().contains("decompresses to 4096 bytes"), "{e}");
        let mut lying = encoded.into_owned();
        lying[4..8].copy_from_slice(&(1u32 << 31).to_le_bytes());
        let e = decode(&blosc, &lying, 4096).unwrap_err();
        assert!(e.to_string().contains("2147483648"), "{e}");
        assert!(decode(&blosc, b"short", 4096).is_err());
    }

    #[test]
    fn v2_and_v3_names_are_recognised() {
        assert_eq!(Kind::of("zstd"), Some(Kind::Zstd));
        assert_eq!(Kind::of("numcodecs.zstd"), Some(Kind::Zstd));
        assert_eq!(Kind::of("gzip"), Some(Kind::Gzip));
        assert_eq!(Kind::of("numcodecs.blosc"), Some(Kind::Blosc));
        assert_eq!(Kind::of("crc32c"), None);
    }
}
