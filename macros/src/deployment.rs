//! `#[mobula::deployment]`: on a struct, the deployment's options and its typed handle
//! (`NameHandle`, whose methods route to a replica); on the struct's impl block, `bind`, and
//! the replica actor that holds the value: each method passes the replica's gate, a
//! `#[batch(...)]` method takes requests one by one and runs them in batches, and the
//! `#[http]` method takes the proxy's requests. `reconfigure` and `check_health` are the
//! controller's.

use proc_macro2::TokenStream as TokenStream2;
use quote::{format_ident, quote};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{
    Expr, FnArg, GenericArgument, ImplItem, ImplItemFn, ItemImpl, ItemStruct, Meta, PathArguments,
    ReturnType, Token, Type,
};

use crate::{Yields, fallible_ok, stored_type, yielded};

pub(crate) fn expand(attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    crate::struct_or_impl(
        attr,
        item,
        "deployment",
        "the replica's state",
        expand_struct,
        expand_impl,
    )
}

fn replica_name(name: &syn::Ident) -> syn::Ident {
    format_ident!("__MobulaReplica{}", name)
}

const KEYS: &str = "num_replicas, num_cpus, num_gpus, max_ongoing_requests, max_queued_requests, health_check_period_ms, health_check_timeout_ms, graceful_shutdown_timeout_ms, autoscaling(min_replicas, max_replicas, target_ongoing_requests, upscale_delay_ms, downscale_delay_ms)";

fn config_options(attr: TokenStream2) -> syn::Result<Vec<TokenStream2>> {
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(attr)?;
    let mut sets = Vec::new();
    for meta in metas {
        let key = meta
            .path()
            .get_ident()
            .map(|i| i.to_string())
            .unwrap_or_default();
        match (key.as_str(), &meta) {
            (
                "num_replicas"
                | "max_ongoing_requests"
                | "health_check_period_ms"
                | "health_check_timeout_ms"
                | "graceful_shutdown_timeout_ms",
                Meta::NameValue(nv),
            ) => {
                let (f, v) = (format_ident!("{}", key), &nv.value);
                sets.push(quote!(c.#f = #v;));
            }
            ("num_cpus" | "num_gpus", Meta::NameValue(nv)) => {
                let (f, v) = (format_ident!("{}", key), &nv.value);
                sets.push(quote!(c.#f = (#v) as f64;));
            }
            ("max_queued_requests", Meta::NameValue(nv)) => {
                let v = &nv.value;
                sets.push(quote!(c.max_queued_requests = ::core::option::Option::Some(#v);));
            }
            ("autoscaling", Meta::List(list)) => {
                let inner =
                    Punctuated::<Meta, Token![,]>::parse_terminated.parse2(list.tokens.clone())?;
                let mut fields = Vec::new();
                for m in inner {
                    let k = m
                        .path()
                        .get_ident()
                        .map(|i| i.to_string())
                        .unwrap_or_default();
                    let Meta::NameValue(nv) = &m else {
                        return Err(syn::Error::new(
                            m.span(),
                            "autoscaling options are `key = value`",
                        ));
                    };
                    let v = &nv.value;
                    match k.as_str() {
                        "min_replicas" | "max_replicas" | "upscale_delay_ms"
                        | "downscale_delay_ms" => {
                            let f = format_ident!("{}", k);
                            fields.push(quote!(a.#f = #v;));
                        }
                        "target_ongoing_requests" => {
                            fields.push(quote!(a.target_ongoing_requests = (#v) as f64;));
                        }
                        _ => {
                            return Err(syn::Error::new(
                                m.span(),
                                "unknown autoscaling option; the options are: min_replicas, max_replicas, target_ongoing_requests, upscale_delay_ms, downscale_delay_ms",
                            ));
                        }
                    }
                }
                sets.push(quote! {
                    let mut a = ::mobula::serve::AutoscalingConfig::default();
                    #(#fields)*
                    c.autoscaling = ::core::option::Option::Some(a);
                });
            }
            _ => {
                return Err(syn::Error::new(
                    meta.span(),
                    format!(
                        "unknown or malformed deployment option `{key}`; the options are: {KEYS}"
                    ),
                ));
            }
        }
    }
    Ok(sets)
}

fn expand_struct(attr: TokenStream2, item: ItemStruct) -> syn::Result<TokenStream2> {
    let sets = config_options(attr)?;
    if !item.generics.params.is_empty() {
        return Err(syn::Error::new(
            item.generics.span(),
            "a deployment cannot be generic: every node must find it by one name",
        ));
    }
    let name = &item.ident;
    let vis = &item.vis;
    let handle = format_ident!("{}Handle", name);
    let replica = replica_name(name);
    let batches = format_ident!("__MobulaBatches{}", name);
    let doc = format!(
        "A handle to the [`{name}`] deployment: each method sends the call to one of its replicas and returns a ref at once."
    );
    let newtype = crate::newtype_handle(
        vis,
        &handle,
        quote!(::mobula::serve::DeploymentHandle<#replica>),
        &doc,
        quote!(Clone, PartialEq),
    );
    Ok(quote! {
        #item

        #newtype

        #[doc(hidden)]
        #[::mobula::actor]
        #vis struct #replica {
            __inner: #name,
            __core: ::mobula::serve::ReplicaCore,
            __batches: #batches,
        }

        impl #name {
            #[doc(hidden)]
            #[allow(unused_mut, clippy::field_reassign_with_default)]
            fn __mobula_config() -> ::mobula::serve::DeploymentConfig {
                let mut c = ::mobula::serve::DeploymentConfig::new("");
                #(#sets)*
                c
            }
        }
    })
}

/// A method's role in the deployment.
enum Role {
    Plain,
    Batch { size: Box<Expr>, wait_ms: Box<Expr> },
    Http,
}

fn take_role(f: &mut ImplItemFn) -> syn::Result<Role> {
    let mut role = Role::Plain;
    let mut kept = Vec::new();
    for a in f.attrs.drain(..) {
        if a.path().is_ident("http") {
            role = Role::Http;
        } else if a.path().is_ident("batch") {
            let mut size: Option<Expr> = None;
            let mut wait: Option<Expr> = None;
            if let Meta::List(list) = &a.meta {
                let metas =
                    Punctuated::<Meta, Token![,]>::parse_terminated.parse2(list.tokens.clone())?;
                for m in metas {
                    let Meta::NameValue(nv) = &m else {
                        return Err(syn::Error::new(
                            m.span(),
                            "batch options are `max_batch_size = N, batch_wait_timeout_ms = M`",
                        ));
                    };
                    if nv.path.is_ident("max_batch_size") {
                        size = Some(nv.value.clone());
                    } else if nv.path.is_ident("batch_wait_timeout_ms") {
                        wait = Some(nv.value.clone());
                    } else {
                        return Err(syn::Error::new(
                            m.span(),
                            "batch options are `max_batch_size = N, batch_wait_timeout_ms = M`",
                        ));
                    }
                }
            }
            role = Role::Batch {
                size: Box::new(size.unwrap_or_else(|| syn::parse_quote!(10))),
                wait_ms: Box::new(wait.unwrap_or_else(|| syn::parse_quote!(10))),
            };
        } else {
            kept.push(a);
        }
    }
    f.attrs = kept;
    Ok(role)
}

/// `Vec<T>`'s `T`.
fn vec_elem(ty: &Type) -> Option<Type> {
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if last.ident != "Vec" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.first()? {
        GenericArgument::Type(t) => Some(t.clone()),
        _ => None,
    }
}

fn typed_params(f: &ImplItemFn) -> syn::Result<Vec<(syn::Ident, Type)>> {
    let mut out = Vec::new();
    for (i, a) in f.sig.inputs.iter().enumerate() {
        let FnArg::Typed(pt) = a else { continue };
        if let Type::ImplTrait(t) = &*pt.ty {
            return Err(syn::Error::new(
                t.span(),
                "a deployment method cannot take `impl Trait`",
            ));
        }
        if let Type::Reference(r) = &*pt.ty {
            if r.mutability.is_some() {
                return Err(syn::Error::new(
                    r.span(),
                    "a deployment method cannot take `&mut`; take the value",
                ));
            }
        }
        out.push((format_ident!("__mobula_p{}", i), (*pt.ty).clone()));
    }
    Ok(out)
}

fn expand_impl(mut item: ItemImpl) -> syn::Result<TokenStream2> {
    if item.trait_.is_some() || !item.generics.params.is_empty() {
        return Err(syn::Error::new(
            item.span(),
            "#[mobula::deployment] goes on the struct's own impl block, without generics",
        ));
    }
    let Type::Path(self_path) = &*item.self_ty else {
        return Err(syn::Error::new(
            item.self_ty.span(),
            "#[mobula::deployment] goes on `impl Name { ... }`",
        ));
    };
    let name = self_path
        .path
        .segments
        .last()
        .expect("a path has a segment")
        .ident
        .clone();
    let handle = format_ident!("{}Handle", name);
    let replica = replica_name(&name);
    let replica_handle = format_ident!("{}Handle", replica);
    let name_str = name.to_string();

    let mut roles = Vec::new();
    for it in &mut item.items {
        if let ImplItem::Fn(f) = it {
            roles.push((f.sig.ident.to_string(), take_role(f)?));
        }
    }
    let role_of = |n: &str| roles.iter().find(|(m, _)| m == n).map(|(_, r)| r);

    let mut ctor = None;
    let mut reconfigure = None;
    let mut check_health = None;
    let mut methods = Vec::new();
    let mut http = None;
    for it in &item.items {
        let ImplItem::Fn(f) = it else { continue };
        let ident = f.sig.ident.to_string();
        match f.sig.inputs.first() {
            Some(FnArg::Receiver(r)) => {
                if r.reference.is_none() {
                    return Err(syn::Error::new(
                        r.span(),
                        "a deployment method takes `&self`",
                    ));
                }
                if ident == "reconfigure" {
                    reconfigure = Some(f);
                } else if ident == "check_health" {
                    check_health = Some(f);
                } else if r.mutability.is_some() {
                    return Err(syn::Error::new(
                        r.span(),
                        "a deployment method takes `&self`, not `&mut self`: a replica serves many requests at once; keep state behind a Mutex or atomics (only `reconfigure` may take `&mut self`)",
                    ));
                } else if matches!(role_of(&ident), Some(Role::Http)) {
                    if http.is_some() {
                        return Err(syn::Error::new(
                            f.sig.span(),
                            "a deployment has one #[http] method",
                        ));
                    }
                    http = Some(f);
                } else {
                    methods.push(f);
                }
            }
            _ if ident == "new" => ctor = Some(f),
            _ => {}
        }
    }
    let ctor = crate::checked_constructor(ctor, &item.self_ty, &name, "a deployment")?;
    let cparams = typed_params(ctor)?;
    if cparams.len() > 7 {
        return Err(syn::Error::new(
            ctor.sig.inputs.span(),
            "a deployment's constructor takes at most 7 parameters",
        ));
    }
    let c_names: Vec<_> = cparams.iter().map(|(n, _)| n.clone()).collect();
    let c_types: Vec<_> = cparams.iter().map(|(_, t)| t.clone()).collect();
    let c_stored: Vec<Type> = c_types
        .iter()
        .map(|t| match t {
            Type::Reference(r) => stored_type(&r.elem),
            t => t.clone(),
        })
        .collect();
    let c_pass: Vec<TokenStream2> = cparams
        .iter()
        .map(|(n, t)| match t {
            Type::Reference(_) => quote!(&#n),
            _ => quote!(#n),
        })
        .collect();
    let ctor_fallible =
        matches!(&ctor.sig.output, ReturnType::Type(_, ty) if fallible_ok(ty).is_some());
    let construct = if ctor_fallible {
        quote!(::mobula::__private::Fallible::into_result(#name::new(#(#c_pass),*)).map_err(|e| e.0)?)
    } else {
        quote!(#name::new(#(#c_pass),*))
    };
    let idx: Vec<syn::Index> = (0..c_names.len()).map(syn::Index::from).collect();
    let bind_params: Vec<TokenStream2> = c_names
        .iter()
        .zip(&c_stored)
        .map(
            |(n, t)| quote!(#n: impl ::mobula::serve::BindArg<#t> + ::core::marker::Send + 'static),
        )
        .collect();

    // reconfigure(&mut self, config: C)
    let (apply_config, reconfigure_body) = match reconfigure {
        Some(f) => {
            let ps = typed_params(f)?;
            if ps.len() != 1 || f.sig.asyncness.is_some() {
                return Err(syn::Error::new(
                    f.sig.span(),
                    "`reconfigure` takes the user config, one deserializable value: `fn reconfigure(&mut self, config: C)` (not async)",
                ));
            }
            let ct = &ps[0].1;
            let call = |target: TokenStream2| {
                quote! {
                    let __parsed: #ct = ::mobula::__private::serde_json::from_str(&__config)
                        .map_err(|e| ::std::format!("the user_config does not fit `reconfigure`: {e}"))?;
                    ::mobula::serve::replica::Outcome::into_outcome(#target.reconfigure(__parsed))?;
                }
            };
            let at_start = call(quote!(__inner));
            let later = call(quote!(self.__inner));
            (
                quote! {
                    if let ::core::option::Option::Some(__config) = __setup.user_config.clone() {
                        #at_start
                    }
                },
                quote! { #later ::core::result::Result::Ok(()) },
            )
        }
        None => (
            quote!(),
            quote!({
                let _ = __config;
                ::core::result::Result::Ok(())
            }),
        ),
    };
    let health_body = match check_health {
        Some(f) => {
            let aw = f.sig.asyncness.map(|_| quote!(.await));
            quote!(::mobula::serve::replica::Outcome::into_outcome(self.__inner.check_health() #aw))
        }
        None => quote!(::core::result::Result::Ok(())),
    };

    let mut fields = Vec::new();
    let mut inits = Vec::new();
    let mut wrappers = Vec::new();
    let mut handle_methods = Vec::new();
    for f in &methods {
        let m = &f.sig.ident;
        let aw = f.sig.asyncness.map(|_| quote!(.await));
        let ps = typed_params(f)?;
        let docs = f.attrs.iter().filter(|a| a.path().is_ident("doc"));
        let vis = match &f.vis {
            syn::Visibility::Inherited => quote!(pub(crate)),
            v => quote!(#v),
        };
        let ret = match &f.sig.output {
            ReturnType::Default => quote!(()),
            ReturnType::Type(_, t) => {
                if yielded(t, f.sig.asyncness.is_some())?.is_some() {
                    return Err(syn::Error::new(
                        t.span(),
                        "a deployment method that yields must be its #[http] method (a streamed response)",
                    ));
                }
                quote!(#t)
            }
        };
        let (out, fallible) = match &f.sig.output {
            ReturnType::Type(_, t) => match fallible_ok(t) {
                Some(ok) => (ok, true),
                None => (quote!(#ret), false),
            },
            ReturnType::Default => (quote!(()), false),
        };
        let flat_call = if fallible {
            quote!(::mobula::__private::Fallible::into_result(__value).map_err(|e| e.0))
        } else {
            quote!(::core::result::Result::Ok(__value))
        };
        match role_of(&m.to_string()) {
            Some(Role::Batch { size, wait_ms }) => {
                if ps.len() != 1 {
                    return Err(syn::Error::new(
                        f.sig.span(),
                        "a #[batch] method takes one parameter, `Vec<T>` (the batch), and returns `Vec<U>`, one answer per request",
                    ));
                }
                let Some(x) = vec_elem(&ps[0].1) else {
                    return Err(syn::Error::new(
                        ps[0].1.span(),
                        "a #[batch] method takes `Vec<T>`: the requests of a batch",
                    ));
                };
                let y = match &f.sig.output {
                    ReturnType::Type(_, t) => vec_elem(t),
                    ReturnType::Default => None,
                };
                let Some(y) = y else {
                    return Err(syn::Error::new(
                        f.sig.output.span(),
                        "a #[batch] method returns `Vec<U>`: one answer per request, in order",
                    ));
                };
                let field = format_ident!("__mobula_batch_{}", m);
                fields.push(quote!(#field: ::mobula::serve::BatchQueue<#x, #y>));
                inits.push(quote!(#field: ::mobula::serve::BatchQueue::new((#size) as usize, ::std::time::Duration::from_millis((#wait_ms) as u64))));
                let run = if f.sig.asyncness.is_some() {
                    quote!(|__xs| self.__inner.#m(__xs))
                } else {
                    quote!(|__xs| ::core::future::ready(self.__inner.#m(__xs)))
                };
                wrappers.push(quote! {
                    async fn #m(&self, __x: #x) -> ::core::result::Result<#y, ::std::string::String> {
                        let mut __admitted = self.__core.admit().await.map_err(|e| e.to_string())?;
                        let __answer = self.__batches.#field.call(__x, #run).await;
                        if __answer.is_err() { __admitted.failed(); }
                        __answer
                    }
                });
                handle_methods.push(quote! {
                    #(#docs)*
                    #vis fn #m(&self, x: impl ::mobula::IntoArg<#x>) -> ::mobula::ObjectRef<#y> {
                        let __x = ::mobula::IntoArg::<#x>::into_arg(x);
                        self.0.call(move |__r: #replica_handle| __r.#m(__x.clone()))
                    }
                });
                let sizes = format_ident!("{}_batch_sizes", m);
                wrappers.push(quote! {
                    fn #sizes(&self) -> ::std::vec::Vec<usize> {
                        self.__batches.#field.batch_sizes()
                    }
                });
                let sizes_doc = format!(
                    "The sizes of the latest batches of `{m}` run by the replica that takes this call, oldest first."
                );
                handle_methods.push(quote! {
                    #[doc = #sizes_doc]
                    #vis fn #sizes(&self) -> ::mobula::ObjectRef<::std::vec::Vec<usize>> {
                        self.0.call(move |__r: #replica_handle| __r.#sizes())
                    }
                });
            }
            _ => {
                let names: Vec<_> = ps.iter().map(|(n, _)| n.clone()).collect();
                let types: Vec<_> = ps.iter().map(|(_, t)| t.clone()).collect();
                let stored: Vec<Type> = types
                    .iter()
                    .map(|t| match t {
                        Type::Reference(r) => stored_type(&r.elem),
                        t => t.clone(),
                    })
                    .collect();
                let args: Vec<_> = ps.iter().map(|(n, _)| quote!(#n)).collect();
                wrappers.push(quote! {
                    async fn #m(&self, #(#names: #types),*) -> ::core::result::Result<#out, ::std::string::String> {
                        let mut __admitted = self.__core.admit().await.map_err(|e| e.to_string())?;
                        let __value = self.__inner.#m(#(#args),*) #aw;
                        let __outcome: ::core::result::Result<#out, ::std::string::String> = #flat_call;
                        if __outcome.is_err() { __admitted.failed(); }
                        __outcome
                    }
                });
                let pnames: Vec<_> = (0..names.len())
                    .map(|i| format_ident!("arg{}", i))
                    .collect();
                handle_methods.push(quote! {
                    #(#docs)*
                    #[allow(clippy::too_many_arguments)]
                    #vis fn #m(&self, #(#pnames: impl ::mobula::IntoArg<#stored>),*) -> ::mobula::ObjectRef<#out> {
                        #(let #pnames = ::mobula::IntoArg::<#stored>::into_arg(#pnames);)*
                        self.0.call(move |__r: #replica_handle| __r.#m(#(#pnames.clone()),*))
                    }
                });
            }
        }
    }

    // The #[http] method.
    let ingress = match http {
        None => {
            let why = format!(
                "deployment `{name_str}` takes no HTTP requests (it has no #[http] method); call it through its handle"
            );
            wrappers.push(quote! {
                fn __mobula_http(&self, __request: ::mobula::serve::Request) -> ::mobula::serve::Response {
                    let _ = __request;
                    ::mobula::serve::Response::error(404, #why)
                }
            });
            quote! {
                impl ::mobula::serve::Ingress for #replica {
                    fn http(replica: &::mobula::ActorHandle<Self>, request: ::mobula::serve::Request) -> ::mobula::serve::IngressCall {
                        ::mobula::serve::IngressCall::Unary(#replica_handle::from(replica.clone()).__mobula_http(request))
                    }
                }
            }
        }
        Some(f) => {
            let m = &f.sig.ident;
            let ps = typed_params(f)?;
            if ps.len() != 1 {
                return Err(syn::Error::new(
                    f.sig.span(),
                    "the #[http] method takes one parameter: `Request`, `Json<T>`, `String` or `Vec<u8>`",
                ));
            }
            let pt = &ps[0].1;
            let aw = f.sig.asyncness.map(|_| quote!(.await));
            let is_async = f.sig.asyncness.is_some();
            let yields = match &f.sig.output {
                ReturnType::Type(_, t) => yielded(t, is_async)?,
                ReturnType::Default => None,
            };
            match yields {
                None => {
                    wrappers.push(quote! {
                        async fn __mobula_http(&self, __request: ::mobula::serve::Request) -> ::mobula::serve::Response {
                            let mut __admitted = match self.__core.admit().await {
                                ::core::result::Result::Ok(a) => a,
                                ::core::result::Result::Err(full) => return ::mobula::serve::replica::refused(full),
                            };
                            let __p = match <#pt as ::mobula::serve::FromRequest>::from_request(__request) {
                                ::core::result::Result::Ok(p) => p,
                                ::core::result::Result::Err(r) => { __admitted.failed(); return r; }
                            };
                            let __r = ::mobula::serve::IntoResponse::into_response(self.__inner.#m(__p) #aw);
                            if __r.status >= 500 { __admitted.failed(); }
                            __r
                        }
                    });
                    quote! {
                        impl ::mobula::serve::Ingress for #replica {
                            fn http(replica: &::mobula::ActorHandle<Self>, request: ::mobula::serve::Request) -> ::mobula::serve::IngressCall {
                                ::mobula::serve::IngressCall::Unary(#replica_handle::from(replica.clone()).__mobula_http(request))
                            }
                        }
                    }
                }
                Some(y) => {
                    let stream = match (&y.kind, is_async) {
                        (Yields::Iterator, _) => {
                            quote!(::mobula::__private::futures::stream::iter(self.__inner.#m(__p) #aw))
                        }
                        (Yields::Stream, _) => quote!(self.__inner.#m(__p).await),
                    };
                    wrappers.push(quote! {
                        async fn __mobula_http_stream(&self, __request: ::mobula::serve::Request) -> impl ::mobula::__private::futures::Stream<Item = ::mobula::serve::StreamItem> {
                            use ::mobula::__private::futures::StreamExt as _;
                            let __head = |r: ::mobula::serve::Response| {
                                ::mobula::__private::futures::stream::iter(::std::vec![::mobula::serve::StreamItem::Head(r)]).boxed_local()
                            };
                            let __admitted = match self.__core.admit().await {
                                ::core::result::Result::Ok(a) => a,
                                ::core::result::Result::Err(full) => return __head(::mobula::serve::replica::refused(full)),
                            };
                            let __p = match <#pt as ::mobula::serve::FromRequest>::from_request(__request) {
                                ::core::result::Result::Ok(p) => p,
                                ::core::result::Result::Err(r) => return __head(r),
                            };
                            #stream
                                .map(move |c| {
                                    let _ = &__admitted;
                                    ::mobula::serve::StreamItem::Chunk(::mobula::serve::IntoChunk::into_chunk(c))
                                })
                                .boxed_local()
                        }
                    });
                    quote! {
                        impl ::mobula::serve::Ingress for #replica {
                            fn http(replica: &::mobula::ActorHandle<Self>, request: ::mobula::serve::Request) -> ::mobula::serve::IngressCall {
                                ::mobula::serve::IngressCall::Stream(#replica_handle::from(replica.clone()).__mobula_http_stream(request))
                            }
                        }
                    }
                }
            }
        }
    };

    let batches = format_ident!("__MobulaBatches{}", name);
    let register = quote! {
        ::mobula::__private::inventory::submit! {
            ::mobula::serve::proxy::RegisteredIngress {
                class: <#replica as ::mobula::__private::ActorClass>::CLASS,
                route: ::mobula::serve::proxy::route_from_bytes::<#replica>,
            }
        }
    };
    Ok(quote! {
        #item

        #[doc(hidden)]
        struct #batches {
            #(#fields,)*
        }

        #[::mobula::actor]
        impl #replica {
            fn new(__setup: ::mobula::serve::ReplicaSetup, #(#c_names: #c_types),*) -> ::core::result::Result<Self, ::std::string::String> {
                #[allow(unused_mut)]
                let mut __inner = #construct;
                #apply_config
                ::core::result::Result::Ok(#replica {
                    __inner,
                    __core: ::mobula::serve::ReplicaCore::new(__setup),
                    __batches: #batches { #(#inits,)* },
                })
            }

            async fn __mobula_health(&self) -> ::core::result::Result<(), ::std::string::String> {
                #health_body
            }

            fn __mobula_load(&self) -> ::mobula::serve::ReplicaLoad {
                self.__core.load()
            }

            fn __mobula_reconfigure(&mut self, __config: ::std::string::String) -> ::core::result::Result<(), ::std::string::String> {
                #reconfigure_body
            }

            async fn __mobula_drain(&self, __timeout_ms: u64) -> bool {
                self.__core.drain(::std::time::Duration::from_millis(__timeout_ms)).await
            }

            #(#wrappers)*
        }

        #[allow(dead_code)]
        impl #name {
            /// Binds the deployment to its constructor's arguments (values, or other bound
            /// deployments, which become their handles); run it with `serve::run`.
            #[allow(clippy::too_many_arguments)]
            pub fn bind(#(#bind_params),*) -> ::mobula::serve::Bound<#replica> {
                ::mobula::serve::Bound::new(::std::boxed::Box::new(move |__plan| {
                    ::core::result::Result::Ok((#(::mobula::serve::BindArg::<#c_stored>::into_resolve(#c_names)(__plan)?,)*))
                }))
            }
        }

        impl ::mobula::serve::PublicHandle for #handle {
            type Replica = #replica;
        }

        impl ::mobula::serve::Deployment for #replica {
            const NAME: &'static str = #name_str;
            type Public = #handle;
            type Args = (#(#c_stored,)*);

            fn default_config() -> ::mobula::serve::DeploymentConfig {
                #name::__mobula_config()
            }

            #[allow(unused_variables)]
            fn start(
                options: ::mobula::ActorOptions,
                setup: ::mobula::serve::ReplicaSetup,
                args: Self::Args,
            ) -> ::core::result::Result<::mobula::ActorHandle<Self>, ::mobula::ActorError> {
                ::mobula::ActorBuilder::<Self, (::mobula::serve::ReplicaSetup, #(#c_stored,)*)>::with_options(options)
                    .remote(setup, #(args.#idx),*)
                    .map(|h| (*h).clone())
            }

            fn health(replica: &::mobula::ActorHandle<Self>) -> ::mobula::ObjectRef<()> {
                #replica_handle::from(replica.clone()).__mobula_health()
            }

            fn load(replica: &::mobula::ActorHandle<Self>) -> ::mobula::ObjectRef<::mobula::serve::ReplicaLoad> {
                #replica_handle::from(replica.clone()).__mobula_load()
            }

            fn reconfigure(replica: &::mobula::ActorHandle<Self>, config: ::std::string::String) -> ::mobula::ObjectRef<()> {
                #replica_handle::from(replica.clone()).__mobula_reconfigure(config)
            }

            fn drain(replica: &::mobula::ActorHandle<Self>, timeout_ms: u64) -> ::mobula::ObjectRef<bool> {
                #replica_handle::from(replica.clone()).__mobula_drain(timeout_ms)
            }
        }

        #ingress
        #register

        impl #handle {
            #(#handle_methods)*
        }
    })
}
