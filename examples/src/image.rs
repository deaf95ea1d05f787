//! PNG output with a perceptual colour map.

use std::path::Path;

use anyhow::Context;

/// Viridis-like perceptual colour map, t in [0, 1] (a polynomial fit of the
/// matplotlib map: monotone lightness, readable in grey scale and by the colour-blind).
pub fn viridis(t: f64) -> [u8; 3] {
    let t = t.clamp(0.0, 1.0);
    let c0 = [0.277_727, 0.005_407, 0.334_099];
    let c1 = [0.105_093, 1.404_613, 1.384_590];
    let c2 = [-0.330_861, 0.214_847, 0.095_095];
    let c3 = [-4.634_230, -5.799_100, -19.332_441];
    let c4 = [6.228_270, 14.179_933, 56.690_552];
    let c5 = [4.776_385, -13.745_145, -65.353_033];
    let c6 = [-5.435_455, 4.645_852, 26.312_435];
    let mut rgb = [0u8; 3];
    for k in 0..3 {
        let v =
            c0[k] + t * (c1[k] + t * (c2[k] + t * (c3[k] + t * (c4[k] + t * (c5[k] + t * c6[k])))));
        rgb[k] = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    }
    rgb
}

/// Writes a `height × width` field (row 0 first) as a colour-mapped PNG, values
/// scaled from lo..hi; row 0 is drawn at the bottom, as pcolormesh does.
pub fn write_png(
    path: &Path,
    width: usize,
    height: usize,
    values: impl Iterator<Item = f64>,
    lo: f64,
    hi: f64,
) -> anyhow::Result<()> {
    let span = if hi > lo { hi - lo } else { 1.0 };
    let mut pixels = Vec::with_capacity(width * height * 3);
    for v in values {
        pixels.extend_from_slice(&viridis((v - lo) / span));
    }
    anyhow::ensure!(
        pixels.len() == width * height * 3,
        "image has {} pixels, expected {}",
        pixels.len() / 3,
        width * height
    );
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), width as u32, height as u32);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut w = enc.write_header()?;
    w.write_image_data(&pixels)?;
    Ok(())
}
