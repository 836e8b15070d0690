//! Code generation.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{DeriveInput, Ident, Type};

use crate::ast::Input;
use crate::attr::Codec;
use crate::bounds::{mentions, type_params, where_clause};
use crate::errors::Errors;
use crate::fallback;
use crate::valid::{self, Event, Key, Model, Shape};

/// The whole derive: the impl, or the errors and a stub impl.
pub(crate) fn derive(input: &DeriveInput) -> TokenStream {
    match try_derive(input) {
        Ok(tokens) => tokens,
        Err(error) => fallback::expand(input, error),
    }
}

fn try_derive(input: &DeriveInput) -> syn::Result<TokenStream> {
    let mut errors = Errors::default();
    let ast = Input::from_syn(input, &mut errors)?;
    let model = valid::check(&ast, &mut errors);
    errors.finish()?;
    Ok(expand(&model))
}

fn expand(model: &Model<'_>) -> TokenStream {
    let private = quote!(::rustok_iggy::__private);
    let ident = model.ident;
    let (impl_generics, ty_generics, _) = model.generics.split_for_impl();
    let where_clause = where_clause_for(model);

    let topic = &model.topic;
    let stream = match &model.stream {
        Some(stream) => quote!(::core::option::Option::Some(#stream)),
        None => quote!(::core::option::Option::None),
    };
    let codec = match model.codec {
        Codec::Json => quote!(#private::Codec::Json),
        Codec::Postcard => quote!(#private::Codec::Postcard),
    };
    let events: Vec<&Event<'_>> = match &model.shape {
        Shape::Struct(event) => vec![event],
        Shape::Enum(variants) => variants.iter().map(|(_, event)| event).collect(),
    };
    let infos = events.iter().map(|event| {
        let event_type = &event.event_type;
        let version = event.version;
        let compatible = &event.compatible_with;
        if compatible.is_empty() {
            quote!(#private::EventTypeInfo::new(#event_type, #version))
        } else {
            quote!(#private::EventTypeInfo::new(#event_type, #version).compatible_with(&[#(#compatible),*]))
        }
    });

    let (event_type, schema_version, partition_key) = match &model.shape {
        Shape::Struct(event) => {
            let event_type = &event.event_type;
            let version = event.version;
            let key = match &event.key {
                Some(key) => {
                    let member = &key.member;
                    let value = key_bytes(key, &quote!(&self.#member));
                    quote!(::core::option::Option::Some(#value))
                }
                None => quote!(::core::option::Option::None),
            };
            (quote!(#event_type), quote!(#version), key)
        }
        Shape::Enum(variants) if variants.is_empty() => {
            // Unreachable: `valid` refuses an empty enum. Kept total for the compiler.
            (
                quote!(match *self {}),
                quote!(match *self {}),
                quote!(match *self {}),
            )
        }
        Shape::Enum(variants) => {
            let event_types = variants.iter().map(|(variant, event)| {
                let event_type = &event.event_type;
                quote!(Self::#variant { .. } => #event_type,)
            });
            let versions = variants.iter().map(|(variant, event)| {
                let version = event.version;
                quote!(Self::#variant { .. } => #version,)
            });
            let binding = Ident::new("__iggy_key", Span::mixed_site());
            let keys = variants.iter().map(|(variant, event)| match &event.key {
                Some(key) => {
                    let member = &key.member;
                    let value = key_bytes(key, &quote!(#binding));
                    quote! {
                        Self::#variant { #member: #binding, .. } => ::core::option::Option::Some(#value),
                    }
                }
                None => quote!(Self::#variant { .. } => ::core::option::Option::None,),
            });
            (
                quote!(match self { #(#event_types)* }),
                quote!(match self { #(#versions)* }),
                quote!(match self { #(#keys)* }),
            )
        }
    };

    quote! {
        const _: () = {
            #[automatically_derived]
            impl #impl_generics #private::IggyEvent for #ident #ty_generics #where_clause {
                const TOPIC: &'static ::core::primitive::str = #topic;
                const STREAM: ::core::option::Option<&'static ::core::primitive::str> = #stream;
                const CODEC: #private::Codec = #codec;
                const EVENT_TYPES: &'static [#private::EventTypeInfo] = &[#(#infos),*];

                #[inline]
                fn event_type(&self) -> &'static ::core::primitive::str {
                    #event_type
                }

                #[inline]
                fn schema_version(&self) -> ::core::primitive::u32 {
                    #schema_version
                }

                #[inline]
                fn partition_key(&self) -> ::core::option::Option<#private::Cow<'_, [::core::primitive::u8]>> {
                    #partition_key
                }
            }
        };
    }
}

/// The key's bytes. Spanned at the field's type, so that a type that is not a
/// `PartitionKey` is reported there ("the trait `PartitionKey` is not implemented for
/// ...").
fn key_bytes(key: &Key<'_>, value: &TokenStream) -> TokenStream {
    let ty = key.ty;
    quote_spanned! {ty.span()=>
        ::rustok_iggy::__private::key_bytes::<#ty>(#value)
    }
}

/// The user's where clause, plus, for a generic type, the bounds the impl needs: the
/// supertraits of `IggyEvent` for the type itself, and `PartitionKey` for each key type
/// that mentions a type parameter.
fn where_clause_for(model: &Model<'_>) -> TokenStream {
    let private = quote!(::rustok_iggy::__private);
    let params = type_params(model.generics);
    let keys: Vec<&Type> = match &model.shape {
        Shape::Struct(event) => event.key.iter().map(|key| key.ty).collect(),
        Shape::Enum(variants) => variants
            .iter()
            .filter_map(|(_, event)| event.key.as_ref().map(|key| key.ty))
            .collect(),
    };
    let key_bounds = keys
        .into_iter()
        .filter(|ty| mentions(quote!(#ty), &params))
        .map(|ty| quote!(#ty: #private::PartitionKey,));
    // Key bounds exist only with type parameters, so the clause already has `where`.
    let mut clause = where_clause(model.ident, model.generics);
    clause.extend(key_bounds);
    clause
}
