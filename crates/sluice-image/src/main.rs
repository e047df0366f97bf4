//! `sluice-image`: builds Sluice's image archive (`make image`) or lays out its root filesystem
//! (the Dockerfile's build stage). See the library's documentation for what goes in.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "sluice-image", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write the image of BINARY as an OCI archive (also loadable by `docker load`).
    Archive {
        /// The `sluice` executable to package (a release build).
        #[arg(long)]
        binary: PathBuf,
        /// Where to write `sluice-image-<version>.tar`.
        #[arg(long)]
        out_dir: PathBuf,
        /// The image repository; the tag is the workspace version.
        #[arg(long, default_value = sluice_image::REPOSITORY)]
        repository: String,
    },
    /// Lay out the image's root filesystem for BINARY under DIR.
    Rootfs {
        #[arg(long)]
        binary: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn main() {
    // One line and a non-zero exit, whatever went wrong.
    if let Err(err) = run(Cli::parse().command) {
        eprintln!("sluice-image: {err}");
        std::process::exit(1);
    }
}

fn run(command: Command) -> Result<(), sluice_image::Error> {
    match command {
        Command::Archive {
            binary,
            out_dir,
            repository,
        } => {
            let out = out_dir.join(sluice_image::archive::file_name());
            let built = sluice_image::archive::build(&binary, &repository, &out)?;
            println!(
                "wrote {} ({})",
                built.path.display(),
                mib(built.archive_size)
            );
            println!("  image:    {}", built.reference);
            println!("  digest:   {}", built.manifest.id());
            println!("  revision: {}", built.described.commit);
            println!(
                "  layer:    {} compressed, {} unpacked; files: {}",
                mib(built.layer.size),
                mib(built.unpacked_size),
                built.files.join(" ")
            );
            println!(
                "  load it:  kind load image-archive {0} | docker load -i {0} | skopeo copy oci-archive:{0}:{1} docker://<registry>/sluice:{1}",
                built.path.display(),
                built.described.version
            );
        }
        Command::Rootfs { binary, out } => {
            let files = sluice_image::archive::write_rootfs(&binary, &out)?;
            println!("wrote {}: {}", out.display(), files.join(" "));
        }
    }
    Ok(())
}
