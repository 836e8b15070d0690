use rustok_iggy::IggyEvent;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "orders")]
enum OrderEvent {
    #[iggy(topic = "shipping")]
    Shipped { order_id: u64 },
}

fn main() {}
