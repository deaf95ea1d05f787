//! Command-line options shared by every example.

use std::path::PathBuf;

use anyhow::{Context, bail};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Size {
    /// Seconds in a debug build: for tests.
    Small,
    /// The benchmark size of WORKLOADS.md.
    Bench,
}

#[derive(Clone, Debug)]
pub struct Args {
    pub size: Size,
    /// Where pictures and DOT files go.
    pub out: PathBuf,
    /// Where arrays are computed: embedded, or the cluster of `--scheduler URL`.
    pub client: accel::Client,
    /// Timed runs per measurement (after one warm-up); the median is reported.
    pub repeats: usize,
}

impl Args {
    /// Parses `--size small|bench` and `--out DIR` from the process arguments.
    pub fn from_env() -> anyhow::Result<Args> {
        Args::parse(std::env::args().skip(1))
    }

    pub fn parse(args: impl IntoIterator<Item = String>) -> anyhow::Result<Args> {
        let mut out = Args {
            size: Size::Bench,
            out: PathBuf::from("out"),
            client: accel::Client::local().with_progress(false),
            repeats: 3,
        };
        let mut it = args.into_iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--size" => {
                    out.size = match it.next().as_deref() {
                        Some("small") => Size::Small,
                        Some("bench") => Size::Bench,
                        other => bail!("--size takes small or bench, got {other:?}"),
                    }
                }
                "--out" => out.out = PathBuf::from(it.next().context("--out needs a directory")?),
                "--scheduler" => {
                    let url = it
                        .next()
                        .context("--scheduler needs a URL such as http://127.0.0.1:8786")?;
                    out.client = accel::Client::connect(&url)?.with_progress(false);
                }
                "--scheduler-file" => {
                    let path = it
                        .next()
                        .context("--scheduler-file needs the path accel-scheduler wrote")?;
                    out.client = accel::Client::from_scheduler_file(&path)?.with_progress(false);
                }
                "--repeats" => {
                    out.repeats = it
                        .next()
                        .and_then(|v| v.parse().ok())
                        .filter(|&n: &usize| n >= 1)
                        .context("--repeats takes a count of at least 1")?;
                }
                "-h" | "--help" => {
                    println!(
                        "options: --size small|bench (default bench), --out DIR (default out), \
                         --repeats N (timed runs, median reported; default 3), --scheduler URL"
                    );
                    std::process::exit(0);
                }
                other => bail!("unknown argument {other:?} (try --help)"),
            }
        }
        std::fs::create_dir_all(&out.out)
            .with_context(|| format!("cannot create output directory {}", out.out.display()))?;
        Ok(out)
    }

    pub fn pick<T>(&self, small: T, bench: T) -> T {
        match self.size {
            Size::Small => small,
            Size::Bench => bench,
        }
    }
}
