use rustok_iggy::IggyEvent;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, IggyEvent)]
#[iggy(topic = "orders")]
enum OrderEvent {
    #[iggy(key = order)]
    Placed { order_id: u64 },
    #[iggy(key = id)]
    Cancelled,
}

fn main() {}
