//! Building a chunk from its frames: the header says what to allocate, each
//! frame is copied once, into its place.

use accel_core::{Buffer, Chunk};
use accel_proto::convert::dtype_from;
use accel_proto::pb;

use super::Frame;

pub struct ChunkSink {
    /// The chunk's shape and columns, once the header came.
    chunk: Option<(Vec<usize>, Vec<Buffer>)>,
    /// Byte offset where each column starts, and the total.
    starts: Vec<usize>,
    /// Largest chunk accepted: a peer's header cannot make this process
    /// allocate more.
    max_bytes: u64,
}

impl ChunkSink {
    pub fn new(max_bytes: u64) -> ChunkSink {
        ChunkSink {
            chunk: None,
            starts: Vec::new(),
            max_bytes,
        }
    }
}

impl ChunkSink {
    /// Takes one frame of the stream.
    pub fn take(&mut self, frame: Frame<'_>) -> Result<(), String> {
        match frame {
            Frame::Header(h) => self.start(h),
            Frame::Data { offset, bytes } => self.write(offset, bytes),
        }
    }

    fn start(&mut self, h: &pb::ChunkHeader) -> Result<(), String> {
        if h.total_bytes > self.max_bytes {
            return Err(format!(
                "a {}-byte chunk is larger than this process accepts ({} bytes)",
                h.total_bytes, self.max_bytes
            ));
        }
        let shape: Vec<usize> = h
            .shape
            .iter()
            .map(|&x| usize::try_from(x).map_err(|_| "chunk too large".to_string()))
            .collect::<Result<_, _>>()?;
        let n = shape
            .iter()
            .try_fold(1usize, |a, &b| a.checked_mul(b))
            .ok_or("chunk too large")?;
        let mut cols = Vec::with_capacity(h.cols.len());
        let mut starts = vec![0];
        for &d in &h.cols {
            let dtype = dtype_from(d).map_err(|e| e.to_string())?;
            let len = n.checked_mul(dtype.size()).ok_or("chunk too large")?;
            let end = starts[starts.len() - 1] + len;
            if end as u64 > h.total_bytes {
                return Err("chunk header larger than its stated size".into());
            }
            starts.push(end);
            cols.push(Buffer::zeros(dtype, n));
        }
        if cols.is_empty() || starts[starts.len() - 1] as u64 != h.total_bytes {
            return Err("chunk header does not match its size".into());
        }
        self.chunk = Some((shape, cols));
        self.starts = starts;
        Ok(())
    }

    fn write(&mut self, mut offset: usize, mut bytes: &[u8]) -> Result<(), String> {
        let (_, cols) = self.chunk.as_mut().ok_or("chunk data before its header")?;
        while !bytes.is_empty() {
            let col = self
                .starts
                .partition_point(|&s| s <= offset)
                .saturating_sub(1);
            let (start, end) = match (self.starts.get(col), self.starts.get(col + 1)) {
                (Some(&s), Some(&e)) => (s, e),
                _ => return Err("chunk data beyond its header".into()),
            };
            let take = bytes.len().min(end - offset);
            cols[col]
                .write_le_bytes(offset - start, &bytes[..take])
                .map_err(|e| e.to_string())?;
            offset += take;
            bytes = &bytes[take..];
        }
        Ok(())
    }

    /// The chunk, once every byte arrived (the stream checked the count).
    pub fn finish(self) -> Result<Chunk, String> {
        self.chunk
            .map(|(shape, cols)| Chunk::new(shape, cols))
            .ok_or_else(|| "chunk stream without a header".into())
    }
}
