//! The `spaceport` command line.
use clap::Parser;

#[derive(Parser)]
#[command(name = "spaceport", version, about = "Photos to a trained, compressed 3D Gaussian Splatting scene")]
enum Cli {}

fn main() {
    let _ = Cli::parse();
}
