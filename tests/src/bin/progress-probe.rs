//! Computes something that takes a few seconds with the embedded client's
//! default settings, for the progress-bar test to watch (in a terminal and
//! not). `progress-probe off` turns the bar off.

fn main() -> anyhow::Result<()> {
    let show = std::env::args().nth(1).as_deref() != Some("off");
    let n = 200_000_000;
    let x = accel::Rng::new(1).random(&[n], n / 400);
    let y = (x.sin().exp().powi(3) + 1.0).log().sin().cos().sum();
    let v = accel::Client::local()
        .with_progress(show)
        .compute::<f64>(&y)?[[]];
    println!("result {v}");
    Ok(())
}
