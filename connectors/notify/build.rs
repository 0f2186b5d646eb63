//! Finds the channel adapters: every file in `src/channel/` other than `mod.rs` is one channel,
//! named by its file (`opsgenie.rs` is the `opsgenie` channel, its adapter the type `Opsgenie`,
//! `Channel::Opsgenie` in `quench-schemas`). Adding a channel is adding its file; the generated
//! `channels.rs` declares the modules and lists them for the macros of `src/channel/mod.rs`.

use std::{env, fs, path::PathBuf};

fn main() {
    let dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets it")).join("src/channel");
    println!("cargo::rerun-if-changed={}", dir.display());
    let mut names: Vec<String> = fs::read_dir(&dir)
        .expect("src/channel exists")
        .map(|entry| entry.expect("readable directory").path())
        .filter(|path| path.extension().is_some_and(|e| e == "rs"))
        .filter_map(|path| path.file_stem().and_then(|s| s.to_str()).map(str::to_string))
        .filter(|name| name != "mod")
        .collect();
    names.sort();
    let mut out = String::new();
    let mut list = Vec::new();
    for name in &names {
        assert!(
            name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
            "channel file names are lowercase letters and digits: {name}.rs"
        );
        let path = dir.join(format!("{name}.rs"));
        out.push_str(&format!("#[path = {:?}]\npub mod {name};\n", path.display().to_string()));
        let mut type_name = name.clone();
        type_name[..1].make_ascii_uppercase();
        list.push(format!("({name}, {type_name})"));
    }
    out.push_str(&format!(
        "\n/// Calls the macro `$m` with every channel as `(module, Type)`, where `Type` is both the\n\
         /// adapter in the module and the channel's variant of `quench_schemas::Channel`.\n\
         macro_rules! with_channels {{\n    ($m:ident) => {{\n        $m! {{ {} }}\n    }};\n}}\n\
         pub(crate) use with_channels;\n",
        list.join(", ")
    ));
    let target = PathBuf::from(env::var("OUT_DIR").expect("cargo sets it")).join("channels.rs");
    fs::write(target, out).expect("OUT_DIR is writable");
}
