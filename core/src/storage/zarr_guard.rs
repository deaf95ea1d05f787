//! zstd decoding that never allocates more than a chunk can hold. zarrs'
//! own zstd codec allocates whatever a frame states it decompresses to
//! before reading a byte: a corrupt or hostile chunk stating terabytes
//! aborted the process (a worker, or the embedded client) instead of
//! failing its task. This codec, registered in zarrs' runtime registry
//! (which comes before the built-in codecs), decodes into at most the size
//! the codec chain expects at that step, and refuses frames stating more.
//! Encoding, configuration and names are the built-in codec's.

use std::borrow::Cow;
use std::sync::{Arc, Once};

use zarrs::array::codec::ZstdCodec;
use zarrs::array::codec::api::{
    CodecRuntimePluginV2, CodecRuntimePluginV3, register_codec_v2, register_codec_v3,
};
use zarrs::array::{
    ArrayBytesRaw, BytesRepresentation, BytesToBytesCodecTraits, Codec, CodecError,
    CodecMetadataOptions, CodecOptions, CodecTraits, CodecTraitsV2, CodecTraitsV3,
    RecommendedConcurrency,
};
use zarrs::metadata::Configuration;
use zarrs::plugin::{ExtensionName, PluginCreateError, ZarrVersion};

/// Registers the capped codec for `zstd` (v2 and v3), once per process.
pub(super) fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let is_zstd = |name: &str| name == "zstd" || name == "numcodecs.zstd";
        let _ = register_codec_v3(CodecRuntimePluginV3::new(is_zstd, |m| {
            capped(<ZstdCodec as CodecTraitsV3>::create(m)?)
        }));
        let _ = register_codec_v2(CodecRuntimePluginV2::new(is_zstd, |m| {
            capped(<ZstdCodec as CodecTraitsV2>::create(m)?)
        }));
    });
}

fn capped(codec: Codec) -> Result<Codec, PluginCreateError> {
    match codec {
        Codec::BytesToBytes(inner) => Ok(Codec::BytesToBytes(Arc::new(CappedZstd { inner }))),
        _ => Err(PluginCreateError::Other(
            "zstd is a bytes-to-bytes codec".into(),
        )),
    }
}

/// zarrs' zstd codec with a bounded decoder.
#[derive(Debug)]
struct CappedZstd {
    inner: Arc<dyn BytesToBytesCodecTraits>,
}

/// Decodes `encoded` into at most `most` bytes: frames stating more are
/// refused before anything is allocated, and output beyond it is an error.
fn decode_capped(encoded: &[u8], most: usize) -> Result<Vec<u8>, CodecError> {
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

impl ExtensionName for CappedZstd {
    fn name(&self, version: ZarrVersion) -> Option<Cow<'static, str>> {
        self.inner.name(version)
    }
}

impl CodecTraits for CappedZstd {
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

impl BytesToBytesCodecTraits for CappedZstd {
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
                decode_capped(&encoded_value, most).map(Cow::Owned)
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
        assert_eq!(decode_capped(&frame, 4096).unwrap(), data);
        assert!(decode_capped(&frame, 4095).is_err());
    }

    #[test]
    fn huge_stated_sizes_are_refused_wherever_the_frame_is() {
        let e = decode_capped(&stating(1 << 40), 1 << 20).unwrap_err();
        assert!(e.to_string().contains("1099511627776"), "{e}");
        // Behind a skippable frame, which the size bound reads past.
        let mut hidden = vec![0x50, 0x2A, 0x4D, 0x18, 0, 0, 0, 0];
        hidden.extend(stating(1 << 40));
        assert!(decode_capped(&hidden, 1 << 20).is_err());
        // Many small frames adding up to more than the chunk.
        let many: Vec<u8> = (0..64).flat_map(|_| stating(1 << 20)).collect();
        assert!(decode_capped(&many, 1 << 20).is_err());
    }
}
