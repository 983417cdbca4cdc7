//! `#[mobula::actor]`: on a struct, the actor class and its typed handle; on the struct's impl
//! block, the constructor (`new`) as `Name::remote(...)` and every `&self` / `&mut self`
//! method as a method of the handle.

use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote, quote_spanned};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{
    Expr, FnArg, ImplItem, ItemImpl, ItemStruct, Lit, Meta, Pat, ReturnType, Token, Type,
    Visibility,
};

use crate::{Yields, bool_literal, fallible_ok, is_integer, resource_option, stored_type, yielded};

pub(crate) fn expand(attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    crate::struct_or_impl(
        attr,
        item,
        "actor",
        "the actor's state",
        expand_struct,
        expand_impl,
    )
}

const KEYS: &str = "num_cpus, num_gpus, resources(...), max_restarts, max_task_retries, max_pending_calls, max_concurrency, detached";

fn class_options(attr: TokenStream2) -> syn::Result<Vec<TokenStream2>> {
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(attr)?;
    let mut calls = Vec::new();
    for meta in metas {
        let key = meta
            .path()
            .get_ident()
            .map(|i| i.to_string())
            .unwrap_or_default();
        if resource_option(&key, &meta, &mut calls)? {
            continue;
        }
        match (key.as_str(), &meta) {
            ("max_restarts" | "max_task_retries", Meta::NameValue(nv)) => {
                if !is_integer(&nv.value) {
                    return Err(syn::Error::new(
                        nv.value.span(),
                        format!("{key} must be an integer (negative: no limit)"),
                    ));
                }
                let (method, v) = (format_ident!("{}", key), &nv.value);
                calls.push(quote!(.#method(#v)));
            }
            ("max_pending_calls" | "max_concurrency", Meta::NameValue(nv)) => {
                let Expr::Lit(syn::ExprLit {
                    lit: Lit::Int(i), ..
                }) = &nv.value
                else {
                    return Err(syn::Error::new(
                        nv.value.span(),
                        format!("{key} must be a positive integer"),
                    ));
                };
                if i.base10_parse::<usize>()? == 0 {
                    return Err(syn::Error::new(
                        i.span(),
                        format!("{key} must be at least 1"),
                    ));
                }
                let method = format_ident!("{}", key);
                calls.push(quote!(.#method(#i)));
            }
            ("detached", Meta::NameValue(nv)) => {
                let b = bool_literal(&nv.value, &key)?;
                calls.push(quote!(.detached(#b)));
            }
            _ => {
                return Err(syn::Error::new(
                    meta.span(),
                    format!("unknown or malformed actor option `{key}`; the options are: {KEYS}"),
                ));
            }
        }
    }
    Ok(calls)
}

fn expand_struct(attr: TokenStream2, item: ItemStruct) -> syn::Result<TokenStream2> {
    let calls = class_options(attr)?;
    if !item.generics.params.is_empty() {
        return Err(syn::Error::new(
            item.generics.span(),
            "an actor class cannot be generic: every node must find it by one name",
        ));
    }
    let name = &item.ident;
    let vis = &item.vis;
    let handle = format_ident!("{}Handle", name);
    let name_str = name.to_string();
    let doc = format!(
        "A handle to a [`{name}`] actor: each of its methods calls the actor's method of that name."
    );
    let newtype = crate::newtype_handle(
        vis,
        &handle,
        quote!(::mobula::ActorHandle<#name>),
        &doc,
        quote!(Clone, PartialEq, Eq),
    );
    Ok(quote! {
        #item

        #newtype

        impl ::mobula::__private::ActorClass for #name {
            const CLASS: &'static str = ::core::concat!(::core::module_path!(), "::", #name_str);
            type Handle = #handle;
            fn default_options() -> ::mobula::ActorOptions {
                ::mobula::ActorOptions::new() #(#calls)*
            }
        }
    })
}

/// Inherited (private) visibility becomes `pub(crate)`: handles are used all over a crate.
fn widen(vis: &Visibility) -> TokenStream2 {
    match vis {
        Visibility::Inherited => quote!(pub(crate)),
        v => quote!(#v),
    }
}

struct Params {
    remote: Vec<TokenStream2>,
    into_args: Vec<TokenStream2>,
    types: Vec<Type>,
    names: Vec<syn::Ident>,
    call_args: Vec<TokenStream2>,
    span: Span,
}

fn params<'a>(inputs: impl Iterator<Item = &'a FnArg>, span: Span) -> syn::Result<Params> {
    let mut p = Params {
        remote: vec![],
        into_args: vec![],
        types: vec![],
        names: vec![],
        call_args: vec![],
        span,
    };
    for (i, input) in inputs.enumerate() {
        let FnArg::Typed(pt) = input else { continue };
        let pname = match &*pt.pat {
            Pat::Ident(id) => id.ident.clone(),
            _ => format_ident!("arg{}", i),
        };
        let arg = format_ident!("__mobula_arg{}", i);
        let (ty, by_ref) = match &*pt.ty {
            Type::Reference(r) if r.mutability.is_some() => {
                return Err(syn::Error::new(
                    r.span(),
                    "an actor method cannot take `&mut`: it receives its own copy of each argument; take the value instead",
                ));
            }
            Type::Reference(r) => (stored_type(&r.elem), true),
            Type::ImplTrait(t) => {
                return Err(syn::Error::new(
                    t.span(),
                    "an actor method cannot take `impl Trait`",
                ));
            }
            other => (other.clone(), false),
        };
        p.remote.push(quote!(#pname: impl ::mobula::IntoArg<#ty>));
        p.into_args
            .push(quote!(::mobula::IntoArg::<#ty>::into_arg(#pname)));
        p.call_args.push(if by_ref {
            quote!(&*#arg)
        } else {
            quote!(#arg.into_owned())
        });
        p.types.push(ty);
        p.names.push(arg);
    }
    if p.types.len() > 8 {
        return Err(syn::Error::new(
            span,
            "an actor's constructor or method takes at most 8 parameters",
        ));
    }
    Ok(p)
}

fn expand_impl(item: ItemImpl) -> syn::Result<TokenStream2> {
    if let Some((_, path, _)) = &item.trait_ {
        return Err(syn::Error::new(
            path.span(),
            "#[mobula::actor] goes on the struct's own impl block, not on a trait impl",
        ));
    }
    if !item.generics.params.is_empty() {
        return Err(syn::Error::new(
            item.generics.span(),
            "an actor class cannot be generic",
        ));
    }
    let Type::Path(self_path) = &*item.self_ty else {
        return Err(syn::Error::new(
            item.self_ty.span(),
            "#[mobula::actor] goes on `impl Name { ... }`",
        ));
    };
    let name = &self_path
        .path
        .segments
        .last()
        .expect("a path has a segment")
        .ident;
    let handle = format_ident!("{}Handle", name);
    let name_str = name.to_string();

    let mut constructor = None;
    let mut methods = Vec::new();
    let mut any_async = false;
    for it in &item.items {
        let ImplItem::Fn(f) = it else { continue };
        match f.sig.inputs.first() {
            Some(FnArg::Receiver(r)) => {
                if r.reference.is_none() {
                    return Err(syn::Error::new(
                        r.span(),
                        "an actor method takes `&self` or `&mut self`, not `self`: the actor lives on after the call",
                    ));
                }
                if !f.sig.generics.params.is_empty() {
                    return Err(syn::Error::new(
                        f.sig.generics.span(),
                        "an actor method cannot be generic",
                    ));
                }
                any_async |= f.sig.asyncness.is_some();
                methods.push(f);
            }
            _ if f.sig.ident == "new" => constructor = Some(f),
            _ => {}
        }
    }
    let ctor = crate::checked_constructor(constructor, &item.self_ty, name, "an actor")?;
    let cp = params(ctor.sig.inputs.iter(), ctor.sig.inputs.span())?;
    let ctor_fallible = match &ctor.sig.output {
        ReturnType::Type(_, ty) => fallible_ok(ty).is_some(),
        ReturnType::Default => {
            return Err(syn::Error::new(
                ctor.sig.span(),
                format!("`new` must return the actor: `-> {name}`"),
            ));
        }
    };
    let ctor_convert = if ctor_fallible {
        quote!(::mobula::__private::Fallible::into_result)
    } else {
        quote!(::core::result::Result::Ok)
    };
    let ctor_vis = widen(&ctor.vis);
    let (c_remote, c_types, c_names, c_call) = (&cp.remote, &cp.types, &cp.names, &cp.call_args);
    let c_names_outer: Vec<_> = ctor
        .sig
        .inputs
        .iter()
        .enumerate()
        .filter_map(|(i, a)| match a {
            FnArg::Typed(pt) => Some(match &*pt.pat {
                Pat::Ident(id) => id.ident.clone(),
                _ => format_ident!("arg{}", i),
            }),
            FnArg::Receiver(_) => None,
        })
        .collect();
    let ctor_span = cp.span;
    let ctor_params_item = quote_spanned! {ctor_span=> type Params = (#(#c_types,)*); };

    let mut handle_methods = Vec::new();
    let mut dispatch_arms = Vec::new();
    for f in &methods {
        let sig = &f.sig;
        let m = &sig.ident;
        let span = if sig.inputs.len() > 1 {
            sig.inputs.span()
        } else {
            sig.span()
        };
        let mut p = params(sig.inputs.iter().skip(1), span)?;
        let is_async = sig.asyncness.is_some();
        let yields = match &sig.output {
            ReturnType::Type(_, ty) => yielded(ty, is_async)?,
            ReturnType::Default => None,
        };
        let user_into = p.into_args.clone();
        if yields.is_some() {
            p.types.push(syn::parse_quote!(::mobula::__private::Sink));
            p.names.push(format_ident!("__mobula_sink"));
        }
        let (remote, into, types, names, call) =
            (&p.remote, &user_into, &p.types, &p.names, &p.call_args);
        let (output, convert) = match (&sig.output, &yields) {
            (_, Some(_)) => (quote!(u64), quote!(::core::result::Result::Ok)),
            (ReturnType::Default, None) => (quote!(()), quote!(::core::result::Result::Ok)),
            (ReturnType::Type(_, ty), None) => match fallible_ok(ty) {
                Some(ok) => (ok, quote!(::mobula::__private::Fallible::into_result)),
                None => (quote!(#ty), quote!(::core::result::Result::Ok)),
            },
        };
        let mutable =
            matches!(sig.inputs.first(), Some(FnArg::Receiver(r)) if r.mutability.is_some());
        // What the body's value becomes: for a method that yields, its items driven to the
        // caller (the count of items is the call's result).
        let body = |value: TokenStream2| match &yields {
            None => quote!(#convert(#value)),
            Some(y) => {
                let item_convert = &y.convert;
                match (&y.kind, is_async) {
                    (Yields::Iterator, false) => quote! {
                        ::mobula::__private::drive_iter(
                            __mobula_sink.into_owned(),
                            ::core::iter::IntoIterator::into_iter(#value).map(#item_convert),
                        )
                    },
                    (Yields::Iterator, true) => quote! {
                        ::mobula::__private::drive_iter_async(
                            __mobula_sink.into_owned(),
                            ::core::iter::IntoIterator::into_iter(#value).map(#item_convert),
                        ).await
                    },
                    (Yields::Stream, _) => quote! {
                        ::mobula::__private::drive_stream(
                            __mobula_sink.into_owned(),
                            ::mobula::__private::StreamExt::map(#value, #item_convert),
                        ).await
                    },
                }
            }
        };
        let sync_body = body(quote!(this.#m(#(#call),*)));
        let async_body = body(quote!(this.#m(#(#call),*).await));
        let invoke = match (is_async, mutable) {
            (false, true) => quote! {
                ::mobula::__private::Invoke::Exclusive(|this, args| {
                    let (#(#names,)*) = args;
                    #sync_body
                })
            },
            (false, false) => quote! {
                ::mobula::__private::Invoke::Shared(|this, args| {
                    let (#(#names,)*) = args;
                    #sync_body
                })
            },
            (true, true) => quote! {
                ::mobula::__private::Invoke::AsyncExclusive(|mut this, args| {
                    ::std::boxed::Box::pin(async move {
                        let (#(#names,)*) = args;
                        #async_body
                    })
                })
            },
            (true, false) => quote! {
                ::mobula::__private::Invoke::AsyncShared(|this, args| {
                    ::std::boxed::Box::pin(async move {
                        let (#(#names,)*) = args;
                        #async_body
                    })
                })
            },
        };
        let vis = widen(&f.vis);
        let docs = f.attrs.iter().filter(|a| a.path().is_ident("doc"));
        let label = format!("{name_str}.{m}");
        dispatch_arms.push(quote_spanned! {span=>
            #label => ::mobula::__private::serve_call::<Self, (#(#types,)*), #output>(handle, #label, #invoke, args),
        });
        handle_methods.push(match &yields {
            None => quote_spanned! {span=>
                #(#docs)*
                #[allow(clippy::too_many_arguments, clippy::unused_unit, unused_variables)]
                #vis fn #m(&self, #(#remote),*) -> ::mobula::ObjectRef<#output> {
                    self.0.__call::<(#(#types,)*), #output>(#label, #invoke, (#(#into,)*))
                }
            },
            Some(y) => {
                let item = &y.item;
                quote_spanned! {span=>
                    #(#docs)*
                    #[allow(clippy::too_many_arguments, clippy::unused_unit, unused_variables)]
                    #vis fn #m(&self, #(#remote),*) -> ::mobula::ObjectRefGenerator<#item> {
                        ::mobula::__private::call_generator::<#item>(#label, |__mobula_sink| {
                            self.0.__call::<(#(#types,)*), u64>(
                                #label,
                                #invoke,
                                (#(#into,)* ::mobula::IntoArg::into_arg(__mobula_sink),),
                            )
                        })
                    }
                }
            }
        });
    }

    Ok(quote! {
        #item

        #[allow(dead_code, clippy::too_many_arguments)]
        impl #name {
            /// Creates the actor (its constructor runs on the node); returns its handle at once.
            #ctor_vis fn remote(#(#c_remote),*) -> ::core::result::Result<#handle, ::mobula::ActorError> {
                ::mobula::ActorBuilder::<Self, (#(#c_types,)*)>::new().remote(#(#c_names_outer),*)
            }

            /// Options for creating one actor: `.options().name("x").remote(...)`.
            #ctor_vis fn options() -> ::mobula::ActorBuilder<Self, (#(#c_types,)*)> {
                ::mobula::ActorBuilder::new()
            }
        }

        impl ::mobula::__private::ActorConstructor for #name {
            #ctor_params_item
            const ASYNC: bool = #any_async;

            #[allow(unused_variables, clippy::unused_unit)]
            fn construct(
                args: <Self::Params as ::mobula::__private::Params>::Resolved,
            ) -> ::core::result::Result<Self, ::mobula::__private::AppError> {
                let (#(#c_names,)*) = args;
                #ctor_convert(#name::new(#(#c_call),*))
            }
        }

        impl #handle {
            #(#handle_methods)*
        }

        impl ::mobula::__private::ActorMethods for #name {
            #[allow(unused_variables)]
            fn dispatch(
                handle: &::mobula::ActorHandle<Self>,
                method: &str,
                args: &[::std::vec::Vec<u8>],
            ) -> ::core::result::Result<::mobula::__private::CallReply, ::std::string::String> {
                match method {
                    #(#dispatch_arms)*
                    other => ::core::result::Result::Err(::std::format!(
                        "actor class `{}` has no method `{}`",
                        <Self as ::mobula::__private::ActorClass>::CLASS,
                        other
                    )),
                }
            }
        }

        ::mobula::__private::inventory::submit! {
            ::mobula::__private::RegisteredActor {
                class: <#name as ::mobula::__private::ActorClass>::CLASS,
                open: ::mobula::__private::open_hosted::<#name>,
            }
        }
    })
}
