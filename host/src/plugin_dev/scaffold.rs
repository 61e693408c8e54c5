//! `genai-bench plugin new`: a plugin project that builds and passes
//! `plugin check` as generated, in Rust, Python or JavaScript.
//!
//! The templates (`host/templates/`) and the WIT contract are embedded in
//! the binary, so a scaffold is self-contained.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

use crate::plugin::ContractVersion;

/// Language of a new plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// Rust with wit-bindgen (`cargo build --target wasm32-wasip2`).
    Rust,
    /// Python with componentize-py.
    Python,
    /// JavaScript with componentize-js.
    Js,
}

/// Arguments of `plugin new`.
#[derive(Debug, Clone, clap::Args)]
pub struct NewArgs {
    /// Plugin name (its `--api-backend` name): 1-64 of a-z, 0-9, '-', '_'.
    pub name: String,
    /// Language of the plugin.
    #[arg(long, value_enum)]
    pub lang: Lang,
    /// Folder to create (default: ./NAME); must not exist or be empty.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

const WIT: &str = include_str!("../../../wit/backend.wit");

macro_rules! t {
    ($path:literal) => {
        include_str!(concat!("../../templates/", $path))
    };
}

const FIXTURES: &[(&str, &str)] = &[
    ("fixtures/stream.json", t!("fixtures/stream.json")),
    ("fixtures/whole.json", t!("fixtures/whole.json")),
    ("fixtures/http-error.json", t!("fixtures/http-error.json")),
    (
        "fixtures/error-in-stream.json",
        t!("fixtures/error-in-stream.json"),
    ),
];

fn files(lang: Lang) -> Vec<(&'static str, &'static str)> {
    let mut f: Vec<(&str, &str)> = match lang {
        Lang::Rust => vec![
            ("Cargo.toml", t!("rust/Cargo.toml")),
            ("src/lib.rs", t!("rust/src/lib.rs")),
            ("src/logic.rs", t!("rust/src/logic.rs")),
            ("README.md", t!("rust/README.md")),
            ("build.sh", t!("rust/build.sh")),
            (".gitignore", t!("rust/gitignore")),
            (".cargo/config.toml", t!("rust/cargo-config.toml")),
        ],
        Lang::Python => vec![
            ("backend.py", t!("python/backend.py")),
            ("logic.py", t!("python/logic.py")),
            ("test_logic.py", t!("python/test_logic.py")),
            ("requirements.txt", t!("python/requirements.txt")),
            ("README.md", t!("python/README.md")),
            ("build.sh", t!("python/build.sh")),
            (".gitignore", t!("python/gitignore")),
        ],
        Lang::Js => vec![
            ("plugin.js", t!("js/plugin.js")),
            ("logic.js", t!("js/logic.js")),
            ("test.mjs", t!("js/test.mjs")),
            ("package.json", t!("js/package.json")),
            ("README.md", t!("js/README.md")),
            ("build.sh", t!("js/build.sh")),
            (".gitignore", t!("js/gitignore")),
        ],
    };
    f.push(("wit/backend.wit", WIT));
    f.extend_from_slice(FIXTURES);
    f
}

/// The wasm file a scaffold builds, relative to its folder.
pub fn wasm_path(lang: Lang, name: &str) -> PathBuf {
    let stem = stem(name);
    match lang {
        Lang::Rust => Path::new("target/wasm32-wasip2/release").join(format!("{stem}.wasm")),
        Lang::Python | Lang::Js => PathBuf::from(format!("{stem}.wasm")),
    }
}

fn stem(name: &str) -> String {
    format!("{name}_plugin").replace('-', "_")
}

/// Writes the project; returns its folder.
pub fn create(args: &NewArgs) -> anyhow::Result<PathBuf> {
    let name = &args.name;
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && name.as_bytes()[0].is_ascii_lowercase();
    if !valid {
        anyhow::bail!(
            "plugin name {name:?} is invalid: use 1-64 characters of a-z, 0-9, '-' or '_', starting with a letter"
        );
    }
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from(name));
    if dir.exists()
        && std::fs::read_dir(&dir)
            .with_context(|| format!("{} exists and is not a folder", dir.display()))?
            .next()
            .is_some()
    {
        anyhow::bail!(
            "{} exists and is not empty; pick another folder with --dir",
            dir.display()
        );
    }
    for (path, text) in files(args.lang) {
        let text = text
            .replace("{{name}}", name)
            .replace("{{crate}}", &format!("{name}-plugin"))
            .replace("{{stem}}", &stem(name))
            .replace("{{contract}}", ContractVersion::CURRENT.as_str());
        let out = dir.join(path);
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&out, text).with_context(|| format!("cannot write {}", out.display()))?;
        #[cfg(unix)]
        if path.ends_with(".sh") {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    Ok(dir)
}

/// `plugin new`: create the project and say how to build and check it.
pub fn run(args: &NewArgs) -> anyhow::Result<ExitCode> {
    let dir = create(args)?;
    let wasm = wasm_path(args.lang, &args.name);
    let build = match args.lang {
        Lang::Rust => "cargo build --release --target wasm32-wasip2",
        Lang::Python => "./build.sh   (needs componentize-py 0.25.1, see README.md)",
        Lang::Js => "npm install && ./build.sh   (componentize-js 0.23.0, see README.md)",
    };
    println!(
        "created {} ({:?} plugin '{}', contract {})\n\nnext:\n  cd {}\n  {build}\n  genai-bench plugin check {} --fixtures fixtures",
        dir.display(),
        args.lang,
        args.name,
        ContractVersion::CURRENT,
        dir.display(),
        wasm.display()
    );
    Ok(ExitCode::SUCCESS)
}
