//! What the derive emits when the input is wrong: the errors, and a stub impl.
//!
//! The stub keeps the rest of the user's code (which names `T::TOPIC` or calls
//! `publish::<T>`) from adding "trait `IggyEvent` is not implemented" errors on top of
//! the real one. It never compiles into a program: `compile_error!` is emitted beside it.
//! This is the pattern of serde and thiserror.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Data, DeriveInput};

use crate::bounds::where_clause;

pub(crate) fn expand(input: &DeriveInput, error: syn::Error) -> TokenStream {
    let errors = error.into_compile_error();
    if matches!(input.data, Data::Union(_)) {
        // A union cannot be serialized by serde: a stub would only add errors.
        return errors;
    }
    let private = quote!(::rustok_iggy::__private);
    let ident = &input.ident;
    let (impl_generics, ty_generics, _) = input.generics.split_for_impl();
    let where_clause = where_clause(ident, &input.generics);
    quote! {
        #errors
        const _: () = {
            #[automatically_derived]
            impl #impl_generics #private::IggyEvent for #ident #ty_generics #where_clause {
                const TOPIC: &'static ::core::primitive::str = "";
                const STREAM: ::core::option::Option<&'static ::core::primitive::str> =
                    ::core::option::Option::None;
                const CODEC: #private::Codec = #private::Codec::Json;
                const EVENT_TYPES: &'static [#private::EventTypeInfo] = &[];

                fn event_type(&self) -> &'static ::core::primitive::str {
                    ::core::unimplemented!()
                }

                fn schema_version(&self) -> ::core::primitive::u32 {
                    ::core::unimplemented!()
                }

                fn partition_key(&self) -> ::core::option::Option<#private::Cow<'_, [::core::primitive::u8]>> {
                    ::core::unimplemented!()
                }
            }
        };
    }
}
