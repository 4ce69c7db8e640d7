//! Replays the checked-in fuzz corpus (`fuzz/corpus/<target>/`) through the
//! same target bodies `cargo fuzz` runs, so every input a fuzzer found
//! interesting stays a regression test on stable Rust.

use std::fs;
use std::path::Path;

use sockit::fuzzing::TARGETS;

#[test]
fn every_corpus_file_passes_its_target() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut folders: Vec<String> = fs::read_dir(&corpus)
        .expect("fuzz/corpus exists")
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    folders.sort();
    let mut targets: Vec<&str> = TARGETS.iter().map(|(name, _)| *name).collect();
    targets.sort();
    assert_eq!(folders, targets, "one corpus folder per fuzz target");
    for name in &targets {
        let source = format!("fuzz/fuzz_targets/{name}.rs");
        let text = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(&source))
            .unwrap_or_else(|e| panic!("{source}: {e}"));
        assert!(
            text.contains(&format!("sockit::fuzzing::{name}(data)")),
            "{source} runs sockit::fuzzing::{name}"
        );
    }

    for (name, target) in TARGETS {
        let mut files: Vec<_> = fs::read_dir(corpus.join(name))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect();
        files.sort();
        assert!(files.len() >= 5, "{name}: only {} corpus files", files.len());
        for file in files {
            let data = fs::read(&file).unwrap();
            let outcome = std::panic::catch_unwind(|| target(&data));
            assert!(outcome.is_ok(), "{name} fails on {}", file.display());
        }
    }
}
