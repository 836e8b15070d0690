//! Partition keys: the bytes that choose an event's partition.

use std::borrow::Cow;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use uuid::Uuid;

/// A value that can be an event's partition key.
///
/// Events with equal key bytes go to the same partition ([`partition_for`]), in publish
/// order. The bytes are part of the wire contract (other Iggy clients must produce the
/// same bytes to land in the same partition), so the rule is fixed:
///
/// | type                                      | key bytes                                        |
/// |-------------------------------------------|--------------------------------------------------|
/// | `str`, `String`                           | the UTF-8 bytes (as `Partitioning::messages_key_str`) |
/// | `[u8]`, `Vec<u8>`, `[u8; N]`, `Bytes`     | the bytes themselves                             |
/// | `u8` … `u128`, `i8` … `i128`              | little-endian (as `Partitioning::messages_key_u32`/`_u64`/`_u128`) |
/// | `usize`, `isize`                          | little-endian of `u64` / `i64` (8 bytes on every platform) |
/// | `uuid::Uuid`                              | its 16 bytes in RFC 9562 order ([`Uuid::as_bytes`]) |
/// | `&T`, `Box<T>`, `Arc<T>`, `Rc<T>`, `Cow<T>` | the bytes of `T`                               |
///
/// Note that a `u64` key and the same number as a string are different keys.
///
/// `Option<T>` is not a key: an event either has a key or not, and that is decided per
/// type (or variant) by `#[iggy(key = ...)]`.
///
/// Implement it for your own key types by delegating to the bytes that identify them:
///
/// ```
/// use std::borrow::Cow;
/// use rustok_iggy::{PartitionKey, connector::partition_for};
///
/// struct TenantId(uuid::Uuid);
///
/// impl PartitionKey for TenantId {
///     fn partition_key(&self) -> Cow<'_, [u8]> {
///         self.0.partition_key()
///     }
/// }
///
/// let tenant = TenantId(uuid::Uuid::from_u128(7));
/// assert_eq!(tenant.partition_key(), tenant.0.as_bytes().as_slice());
/// assert!(partition_for(&tenant.partition_key(), 8) < 8);
/// ```
///
/// [`partition_for`]: crate::connector::partition_for
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a partition key",
    label = "the trait `PartitionKey` is not implemented for `{Self}`",
    note = "`PartitionKey` is implemented for strings, integers, `uuid::Uuid` and byte slices, vectors and arrays; implement it for your own key types"
)]
pub trait PartitionKey {
    /// The key bytes.
    fn partition_key(&self) -> Cow<'_, [u8]>;
}

impl PartitionKey for str {
    fn partition_key(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self.as_bytes())
    }
}

impl PartitionKey for String {
    fn partition_key(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self.as_bytes())
    }
}

impl PartitionKey for [u8] {
    fn partition_key(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self)
    }
}

impl PartitionKey for Vec<u8> {
    fn partition_key(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self)
    }
}

impl<const N: usize> PartitionKey for [u8; N] {
    fn partition_key(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self)
    }
}

impl PartitionKey for Bytes {
    fn partition_key(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self)
    }
}

impl PartitionKey for Uuid {
    fn partition_key(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self.as_bytes())
    }
}

macro_rules! little_endian {
    ($($ty:ty),*) => {$(
        impl PartitionKey for $ty {
            fn partition_key(&self) -> Cow<'_, [u8]> {
                Cow::Owned(self.to_le_bytes().to_vec())
            }
        }
    )*};
}

little_endian!(u8, u16, u32, u64, u128, i8, i16, i32, i64, i128);

impl PartitionKey for usize {
    /// The little-endian bytes of the value as a `u64`, on every platform.
    fn partition_key(&self) -> Cow<'_, [u8]> {
        // Lossless: no supported platform has a usize wider than 64 bits.
        Cow::Owned((*self as u64).to_le_bytes().to_vec())
    }
}

impl PartitionKey for isize {
    /// The little-endian bytes of the value as an `i64`, on every platform.
    fn partition_key(&self) -> Cow<'_, [u8]> {
        // Lossless: no supported platform has an isize wider than 64 bits.
        Cow::Owned((*self as i64).to_le_bytes().to_vec())
    }
}

impl<T: PartitionKey + ?Sized> PartitionKey for &T {
    fn partition_key(&self) -> Cow<'_, [u8]> {
        (**self).partition_key()
    }
}

impl<T: PartitionKey + ?Sized> PartitionKey for Box<T> {
    fn partition_key(&self) -> Cow<'_, [u8]> {
        (**self).partition_key()
    }
}

impl<T: PartitionKey + ?Sized> PartitionKey for Arc<T> {
    fn partition_key(&self) -> Cow<'_, [u8]> {
        (**self).partition_key()
    }
}

impl<T: PartitionKey + ?Sized> PartitionKey for Rc<T> {
    fn partition_key(&self) -> Cow<'_, [u8]> {
        (**self).partition_key()
    }
}

impl<T: PartitionKey + ToOwned + ?Sized> PartitionKey for Cow<'_, T> {
    fn partition_key(&self) -> Cow<'_, [u8]> {
        (**self).partition_key()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(key: &(impl PartitionKey + ?Sized)) -> Vec<u8> {
        key.partition_key().into_owned()
    }

    #[test]
    fn strings_and_byte_containers_are_their_bytes() {
        assert_eq!(bytes("tenant-1"), b"tenant-1");
        assert_eq!(bytes(&String::from("tenant-1")), b"tenant-1");
        assert_eq!(bytes(&&"tenant-1"), b"tenant-1");
        assert_eq!(bytes(&b"\x00\xff"[..]), [0, 0xff]);
        assert_eq!(bytes(&vec![1_u8, 2]), [1, 2]);
        assert_eq!(bytes(&[1_u8, 2, 3]), [1, 2, 3]);
        assert_eq!(bytes(&Bytes::from_static(b"ab")), b"ab");
        assert_eq!(bytes(&Box::<str>::from("k")), b"k");
        assert_eq!(bytes(&Arc::<str>::from("k")), b"k");
        assert_eq!(bytes(&Rc::new(String::from("k"))), b"k");
        assert_eq!(bytes(&Cow::<str>::Borrowed("k")), b"k");
        assert_eq!(bytes(""), b"");
    }

    #[test]
    fn integers_are_little_endian() {
        assert_eq!(bytes(&0x0102_u16), [0x02, 0x01]);
        assert_eq!(bytes(&1_u32), [1, 0, 0, 0]);
        assert_eq!(bytes(&1_u64), [1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(bytes(&-1_i32), [0xff; 4]);
        assert_eq!(bytes(&1_u128).len(), 16);
        assert_eq!(bytes(&7_u8), [7]);
        assert_eq!(bytes(&1_usize), bytes(&1_u64));
        assert_eq!(bytes(&-2_isize), bytes(&-2_i64));
    }

    #[test]
    fn uuid_is_its_sixteen_bytes_in_order() {
        let id = Uuid::from_u128(0x0011_2233_4455_6677_8899_aabb_ccdd_eeff);
        assert_eq!(
            bytes(&id),
            [
                0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
                0xee, 0xff
            ]
        );
    }
}
