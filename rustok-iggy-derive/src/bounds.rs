//! The bounds both the impl and the fallback stub carry: the user's `where`
//! predicates, the supertraits of `IggyEvent` for a generic type, and which types
//! mention a type parameter.

use proc_macro2::{TokenStream, TokenTree};
use quote::quote;
use syn::{Generics, Ident};

/// `where` with the user's predicates and, when the type has type parameters, the
/// supertraits of `IggyEvent` for the type (`Order<T>: Serialize + ...` holds only when
/// `T` is bounded). Empty when there is nothing to say.
pub(crate) fn where_clause(ident: &Ident, generics: &Generics) -> TokenStream {
    let private = quote!(::rustok_iggy::__private);
    let existing = generics
        .where_clause
        .as_ref()
        .map(|clause| {
            let predicates = clause.predicates.iter();
            quote!(#(#predicates,)*)
        })
        .unwrap_or_default();
    let supertraits = if type_params(generics).is_empty() {
        TokenStream::new()
    } else {
        let (_, ty_generics, _) = generics.split_for_impl();
        quote! {
            #ident #ty_generics: #private::Serialize
                + #private::DeserializeOwned
                + ::core::marker::Send
                + ::core::marker::Sync
                + 'static,
        }
    };
    if existing.is_empty() && supertraits.is_empty() {
        TokenStream::new()
    } else {
        quote!(where #existing #supertraits)
    }
}

pub(crate) fn type_params(generics: &Generics) -> Vec<&Ident> {
    generics.type_params().map(|param| &param.ident).collect()
}

/// Whether `tokens` name one of `params`.
pub(crate) fn mentions(tokens: TokenStream, params: &[&Ident]) -> bool {
    tokens.into_iter().any(|token| match token {
        TokenTree::Ident(ident) => params.iter().any(|param| **param == ident),
        TokenTree::Group(group) => mentions(group.stream(), params),
        _ => false,
    })
}
