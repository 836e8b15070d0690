use rustok_iggy::IggyEvent;

#[derive(IggyEvent)]
#[iggy(topic = "orders")]
union Amount {
    cents: u64,
    ratio: f64,
}

fn main() {}
