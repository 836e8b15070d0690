//! How much faster and smaller is Postcard than JSON for real domain events?
//!
//! Encode and decode, through `rustok_iggy::Codec` (what `Transport<E>` calls), of a
//! small flat event, a medium one (strings, a `Vec`, an enum) and the medium one in
//! an envelope with every metadata field. The encoded sizes go to
//! `<target>/criterion/rustok/codec_sizes.json`.
//!
//! Run with: cargo bench -p benches --bench codec

use std::hint::black_box;

use benches::events::{Envelope, OrderPlaced, OrderShipped, envelope, order_placed, order_shipped};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rustok_iggy::Codec;
use serde::Serialize;
use serde::de::DeserializeOwned;

fn case<T>(
    c: &mut Criterion,
    name: &str,
    event: &T,
    sizes: &mut serde_json::Map<String, serde_json::Value>,
) where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let mut group = c.benchmark_group("codec");
    group.throughput(Throughput::Elements(1));
    let mut by_codec = serde_json::Map::new();
    for codec in Codec::ALL {
        let bytes = codec.encode_value(name, event).expect("encode");
        let back: T = codec.decode_value(name, &bytes).expect("decode");
        assert_eq!(&back, event, "{codec} round trip");
        by_codec.insert(codec.as_str().into(), bytes.len().into());

        group.bench_function(BenchmarkId::new(format!("encode/{name}"), codec), |b| {
            b.iter(|| codec.encode_value(name, black_box(event)).expect("encode"));
        });
        group.bench_function(BenchmarkId::new(format!("decode/{name}"), codec), |b| {
            b.iter(|| {
                codec
                    .decode_value::<T>(name, black_box(&bytes))
                    .expect("decode")
            });
        });
    }
    group.finish();
    sizes.insert(name.into(), by_codec.into());
}

fn codec(c: &mut Criterion) {
    let mut sizes = serde_json::Map::new();
    let small: OrderPlaced = order_placed(7);
    let medium: OrderShipped = order_shipped(7);
    let wrapped: Envelope = envelope(7);
    case(c, "small", &small, &mut sizes);
    case(c, "medium", &medium, &mut sizes);
    case(c, "envelope", &wrapped, &mut sizes);
    benches::write_result("codec_sizes.json", &sizes.into());
}

criterion_group! {
    name = benches;
    config = benches::criterion();
    targets = codec
}
criterion_main!(benches);
