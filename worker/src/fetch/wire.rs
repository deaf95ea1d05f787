//! The data plane's framing: a magic greeting per connection, then
//! length-prefixed protobuf requests and replies, each reply followed by the
//! chunk's raw bytes.

use accel_proto::pb;
use prost::Message;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Opens every data connection; the last byte is the wire version.
pub const MAGIC: &[u8; 8] = b"ACCELDP1";

/// Longest request or reply header accepted (a chunk header is tiny).
const MAX_MESSAGE: usize = 1 << 20;

pub async fn write_msg<W: AsyncWrite + Unpin>(
    w: &mut W,
    msg: &impl Message,
) -> std::io::Result<()> {
    let body = msg.encode_to_vec();
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    w.write_all(&out).await
}

/// Reads one message; `Ok(None)` when the peer closed the connection between messages.
pub async fn read_msg<M: Message + Default, R: AsyncRead + Unpin>(
    r: &mut R,
) -> Result<Option<M>, String> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.to_string()),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_MESSAGE {
        return Err(format!("a {len}-byte message header is too large"));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await.map_err(|e| e.to_string())?;
    M::decode(body.as_slice())
        .map(Some)
        .map_err(|e| format!("malformed message: {e}"))
}

pub fn error_reply(message: String) -> pb::DataReply {
    pb::DataReply {
        reply: Some(pb::data_reply::Reply::Error(message)),
    }
}
