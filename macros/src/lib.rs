//! Procedural macros of [mobula](https://docs.rs/mobula). Use them through `mobula`:
//! `#[mobula::remote]` and `#[mobula::actor]`.

mod actor;
mod deployment;

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote, quote_spanned};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, FnArg, ItemFn, Lit, Meta, Pat, ReturnType, Token, Type};

/// Makes a function remote: `f.remote(args...)` runs it as a task and returns an
/// `ObjectRef` to its result. See the `mobula` crate for the full story.
///
/// Options (all optional): `num_cpus`, `num_gpus`, `max_retries`, `retry_exceptions`,
/// `name`, and `resources(name = amount, ...)`:
///
/// ```ignore
/// #[mobula::remote(num_cpus = 2, max_retries = 0, resources(fpga = 1))]
/// fn heavy(x: u64) -> u64 { x * 2 }
/// ```
#[proc_macro_attribute]
pub fn remote(attr: TokenStream, item: TokenStream) -> TokenStream {
    match expand_remote(attr.into(), item.into()) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn expand_remote(attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    let (option_calls, num_returns) = parse_options(attr)?;
    let func: ItemFn = syn::parse2(item)?;
    let sig = &func.sig;
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(syn::Error::new(
            sig.generics.span(),
            "a remote function cannot be generic: every node must find it by one name; write one remote function per concrete type",
        ));
    }
    if let Some(v) = &sig.variadic {
        return Err(syn::Error::new(
            v.span(),
            "a remote function cannot be variadic",
        ));
    }
    if sig.unsafety.is_some() || sig.constness.is_some() || sig.abi.is_some() {
        return Err(syn::Error::new(
            sig.span(),
            "a remote function must be a plain `fn` or `async fn`",
        ));
    }
    if sig.inputs.len() > 12 {
        return Err(syn::Error::new(
            sig.inputs.span(),
            "a remote function takes at most 12 parameters",
        ));
    }

    let name = &sig.ident;
    let vis = &func.vis;
    let attrs = &func.attrs;
    let is_async = sig.asyncness.is_some();

    let mut remote_params = Vec::new(); // name: impl IntoArg<T>
    let mut into_args = Vec::new();
    let mut param_types = Vec::new();
    let mut arg_names = Vec::new();
    let mut call_args = Vec::new();
    for (i, input) in sig.inputs.iter().enumerate() {
        let FnArg::Typed(pt) = input else {
            return Err(syn::Error::new(
                input.span(),
                "a remote function cannot take `self`",
            ));
        };
        let pname = match &*pt.pat {
            Pat::Ident(p) => p.ident.clone(),
            _ => format_ident!("arg{}", i),
        };
        let arg = format_ident!("__mobula_arg{}", i);
        let (ty, by_ref) = match &*pt.ty {
            Type::Reference(r) if r.mutability.is_some() => {
                return Err(syn::Error::new(
                    r.span(),
                    "a remote function cannot take `&mut`: it receives its own copy of each argument; take the value instead",
                ));
            }
            Type::Reference(r) => (stored_type(&r.elem), true),
            Type::ImplTrait(t) => {
                return Err(syn::Error::new(
                    t.span(),
                    "a remote function cannot take `impl Trait`: name a concrete type",
                ));
            }
            other => (other.clone(), false),
        };
        remote_params.push(quote!(#pname: impl ::mobula::IntoArg<#ty>));
        into_args.push(quote!(::mobula::IntoArg::<#ty>::into_arg(#pname)));
        call_args.push(if by_ref {
            quote!(&*#arg)
        } else {
            quote!(#arg.into_owned())
        });
        param_types.push(ty);
        arg_names.push(arg);
    }

    let yields = match &sig.output {
        ReturnType::Type(_, ty) => yielded(ty, is_async)?,
        ReturnType::Default => None,
    };
    if yields.is_some() && sig.inputs.len() > 11 {
        return Err(syn::Error::new(
            sig.inputs.span(),
            "a remote function that yields takes at most 11 parameters",
        ));
    }
    if yields.is_some()
        && let Some((_, span)) = num_returns
    {
        return Err(syn::Error::new(
            span,
            "num_returns and a function that yields do not go together: a generator gives a ref per item already",
        ));
    }
    let (output, convert) = match (&sig.output, &yields) {
        (_, Some(_)) => (quote!(u64), quote!(::core::result::Result::Ok)),
        (ReturnType::Default, None) => (quote!(()), quote!(::core::result::Result::Ok)),
        (ReturnType::Type(_, ty), None) => match fallible_ok(ty) {
            Some(ok) => (ok, quote!(::mobula::__private::Fallible::into_result)),
            None => (quote!(#ty), quote!(::core::result::Result::Ok)),
        },
    };
    if yields.is_some() {
        param_types.push(syn::parse_quote!(::mobula::__private::Sink));
        arg_names.push(format_ident!("__mobula_sink"));
    }
    let output_span = match &sig.output {
        ReturnType::Default => Span::call_site(),
        ReturnType::Type(_, ty) => ty.span(),
    };

    let params_span = if sig.inputs.is_empty() {
        Span::call_site()
    } else {
        sig.inputs.span()
    };
    let params_item = quote_spanned! {params_span=> type Params = (#(#param_types,)*); };
    let output_item = quote_spanned! {output_span=> type Output = #output; };

    let kind = if is_async {
        quote!(Async)
    } else {
        quote!(Blocking)
    };
    let invoke_body = if let Some(y) = &yields {
        let item_convert = &y.convert;
        let items = quote!(#name.call(#(#call_args),*));
        match y.kind {
            Yields::Iterator if is_async => quote! {
                ::mobula::__private::Body::Future(::std::boxed::Box::pin(async move {
                    let (#(#arg_names,)*) = args;
                    let __mobula_items = ::core::iter::IntoIterator::into_iter(#items.await)
                        .map(#item_convert);
                    ::mobula::__private::drive_iter_async(__mobula_sink.into_owned(), __mobula_items).await
                }))
            },
            Yields::Iterator => quote! {
                let (#(#arg_names,)*) = args;
                let __mobula_items = ::core::iter::IntoIterator::into_iter(#items)
                    .map(#item_convert);
                ::mobula::__private::Body::Done(
                    ::mobula::__private::drive_iter(__mobula_sink.into_owned(), __mobula_items)
                )
            },
            Yields::Stream => quote! {
                ::mobula::__private::Body::Future(::std::boxed::Box::pin(async move {
                    let (#(#arg_names,)*) = args;
                    let __mobula_items = ::mobula::__private::StreamExt::map(#items.await, #item_convert);
                    ::mobula::__private::drive_stream(__mobula_sink.into_owned(), __mobula_items).await
                }))
            },
        }
    } else if is_async {
        quote! {
            ::mobula::__private::Body::Future(::std::boxed::Box::pin(async move {
                let (#(#arg_names,)*) = args;
                #convert(#name.call(#(#call_args),*).await)
            }))
        }
    } else {
        quote! {
            let (#(#arg_names,)*) = args;
            ::mobula::__private::Body::Done(#convert(#name.call(#(#call_args),*)))
        }
    };

    let submit = quote! {
        ::mobula::__private::submit::<Self>(
            ::core::option::Option::None,
            (#(#into_args,)*),
        )
    };
    let user_types = &param_types[..param_types.len() - usize::from(yields.is_some())];
    let builder_params = match &yields {
        Some(y) => {
            let item = &y.item;
            quote!(::mobula::__private::Streaming<(#item, #(#user_types,)*)>)
        }
        None => quote!((#(#param_types,)*)),
    };
    let remote_fn = match (num_returns, &yields) {
        (_, Some(y)) => {
            let item = &y.item;
            quote! {
                /// Runs this function as a task; returns the generator of its items' refs at
                /// once.
                #vis fn remote(&self, #(#remote_params),*) -> ::mobula::ObjectRefGenerator<#item> {
                    ::mobula::__private::submit_generator::<Self, #item>(
                        ::core::option::Option::None,
                        |__mobula_sink| (#(#into_args,)* ::mobula::IntoArg::into_arg(__mobula_sink),),
                    )
                }
            }
        }
        (None, None) => quote! {
            /// Runs this function as a task; returns a ref to its result at once.
            #vis fn remote(&self, #(#remote_params),*) -> ::mobula::ObjectRef<#output> {
                #submit
            }
        },
        (Some((n, span)), None) => {
            if let Some(elems) = tuple_len(&output)
                && elems != n
            {
                return Err(syn::Error::new(
                    span,
                    format!("num_returns = {n}, but the function returns a tuple of {elems}"),
                ));
            }
            quote! {
                /// Runs this function as a task; returns a ref per element of its tuple at
                /// once (`num_returns`).
                #vis fn remote(&self, #(#remote_params),*)
                    -> <::mobula::ObjectRef<#output> as ::mobula::Split>::Refs {
                    ::mobula::Split::split(#submit)
                }
            }
        }
    };

    let name_str = name.to_string();
    let call_inputs = &sig.inputs;
    let call_output = &sig.output;
    let block = &func.block;
    let asyncness = &sig.asyncness;

    Ok(quote! {
        #(#attrs)*
        #[allow(non_camel_case_types)]
        #[derive(Debug, Clone, Copy, Default)]
        #vis struct #name;

        #[allow(dead_code, clippy::too_many_arguments)]
        impl #name {
            #remote_fn

            /// Options for one call: `.options().num_cpus(2).remote(...)`.
            #vis fn options(&self) -> ::mobula::TaskBuilder<Self, #builder_params> {
                ::mobula::TaskBuilder::new()
            }

            /// The function's body, called as plain Rust on this thread.
            #(#attrs)*
            #vis #asyncness fn call(&self, #call_inputs) #call_output #block
        }

        impl ::mobula::__private::RemoteFunction for #name {
            #params_item
            #output_item

            fn descriptor() -> &'static ::mobula::__private::FunctionDescriptor {
                fn defaults() -> ::mobula::TaskOptions {
                    ::mobula::TaskOptions::new() #(#option_calls)*
                }
                static DESCRIPTOR: ::mobula::__private::FunctionDescriptor =
                    ::mobula::__private::FunctionDescriptor::new(
                        ::core::concat!(::core::module_path!(), "::", #name_str),
                        ::mobula::__private::FunctionKind::#kind,
                        defaults,
                    );
                &DESCRIPTOR
            }

            #[allow(unused_variables, clippy::unused_unit)]
            fn invoke(
                args: <Self::Params as ::mobula::__private::Params>::Resolved,
            ) -> ::mobula::__private::Body<Self::Output> {
                #invoke_body
            }
        }

        ::mobula::__private::inventory::submit! {
            ::mobula::__private::RegisteredFunction {
                descriptor: <#name as ::mobula::__private::RemoteFunction>::descriptor,
                run_remote: ::mobula::__private::run_remote::<#name>,
                call_here: ::mobula::__private::call_here::<#name>,
                call_typed: ::mobula::__private::call_typed::<#name>,
            }
        }

    })
}

/// How a function yields its items.
pub(crate) enum Yields {
    /// It returns `impl Iterator<Item = T>`.
    Iterator,
    /// An `async fn` returning `impl Stream<Item = T>`.
    Stream,
}

/// A function that yields: how, the type of its items' refs, and how an item becomes a
/// `Result` (an item of type `Result<T, E>` ends the task with `E`).
pub(crate) struct Yielded {
    pub kind: Yields,
    pub item: TokenStream2,
    pub convert: TokenStream2,
}

/// Whether a return type yields: `impl Iterator<Item = T>` (or `IntoIterator`), or, for an
/// `async fn`, `impl Stream<Item = T>`.
pub(crate) fn yielded(ty: &Type, is_async: bool) -> syn::Result<Option<Yielded>> {
    let Type::ImplTrait(it) = ty else {
        return Ok(None);
    };
    for bound in &it.bounds {
        let syn::TypeParamBound::Trait(t) = bound else {
            continue;
        };
        let Some(last) = t.path.segments.last() else {
            continue;
        };
        let kind = match last.ident.to_string().as_str() {
            "Iterator" | "IntoIterator" => Yields::Iterator,
            "Stream" if is_async => Yields::Stream,
            "Stream" => {
                return Err(syn::Error::new(
                    ty.span(),
                    "a function that returns a Stream must be an `async fn`; a plain `fn` yields with `impl Iterator<Item = T>`",
                ));
            }
            _ => continue,
        };
        let args = match &last.arguments {
            syn::PathArguments::AngleBracketed(args) => args.args.iter().collect(),
            _ => Vec::new(),
        };
        for arg in args {
            if let syn::GenericArgument::AssocType(a) = arg
                && a.ident == "Item"
            {
                let item_ty = &a.ty;
                let (item, convert) = match fallible_ok(item_ty) {
                    Some(ok) => (ok, quote!(::mobula::__private::Fallible::into_result)),
                    None => (quote!(#item_ty), quote!(::core::result::Result::Ok)),
                };
                return Ok(Some(Yielded {
                    kind,
                    item,
                    convert,
                }));
            }
        }
        return Err(syn::Error::new(
            ty.span(),
            "name the items a generator yields: `impl Iterator<Item = T>`",
        ));
    }
    Ok(None)
}

/// How many elements a tuple type written out has, if `ty` is one.
fn tuple_len(ty: &TokenStream2) -> Option<usize> {
    match syn::parse2::<Type>(ty.clone()).ok()? {
        Type::Tuple(t) => Some(t.elems.len()),
        _ => None,
    }
}

/// The type stored for a borrowed parameter: `&T` borrows a `T`, `&[T]` a `Vec<T>`, `&str`
/// a `String`.
pub(crate) fn stored_type(elem: &Type) -> Type {
    match elem {
        Type::Slice(s) => {
            let inner = &s.elem;
            syn::parse_quote!(::std::vec::Vec<#inner>)
        }
        Type::Path(p) if p.qself.is_none() && p.path.is_ident("str") => {
            syn::parse_quote!(::std::string::String)
        }
        other => other.clone(),
    }
}

/// For a return type named `Result`, what an `ObjectRef` to the result holds: its first type
/// argument, or the `Ok` type by way of `Fallible` for an alias without arguments.
pub(crate) fn fallible_ok(ty: &Type) -> Option<TokenStream2> {
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    if let syn::PathArguments::AngleBracketed(args) = &last.arguments
        && let Some(syn::GenericArgument::Type(ok)) = args.args.first()
    {
        return Some(quote!(#ok));
    }
    Some(quote!(<#ty as ::mobula::__private::Fallible>::Ok))
}

/// Makes a struct an actor class, or an impl block its methods. See the `mobula` crate.
#[proc_macro_attribute]
pub fn actor(attr: TokenStream, item: TokenStream) -> TokenStream {
    match actor::expand(attr.into(), item.into()) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// A Serve deployment: on a struct, its options; on its impl block, its methods, `bind`,
/// and the replica actor. See `mobula::serve`.
#[proc_macro_attribute]
pub fn deployment(attr: TokenStream, item: TokenStream) -> TokenStream {
    match deployment::expand(attr.into(), item.into()) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// `#[mobula::main]` on `fn main` (or `async fn main`, run on a plain executor): the same
/// binary runs as the driver and as every worker node. Started with `MOBULA_WORKER=1` (and `MOBULA_ADDRESS`, the join token and the CA
/// fingerprint), the process joins the cluster as a worker and exits when the cluster stops;
/// otherwise `main` runs as written.
#[proc_macro_attribute]
pub fn main(attr: TokenStream, item: TokenStream) -> TokenStream {
    match expand_main(attr.into(), item.into()) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn expand_main(attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    if !attr.is_empty() {
        return Err(syn::Error::new(
            attr.span(),
            "#[mobula::main] takes no options: configure the node through mobula::Config or MOBULA_* variables",
        ));
    }
    let mut f: syn::ItemFn = syn::parse2(item)?;
    if f.sig.ident != "main" || !f.sig.inputs.is_empty() {
        return Err(syn::Error::new(
            f.sig.span(),
            "#[mobula::main] goes on the program's `fn main()` or `async fn main()` (no parameters)",
        ));
    }
    if f.sig.asyncness.take().is_some() {
        // An async main runs on a plain executor: Mobula's refs are awaited on any.
        let body = &f.block;
        f.block = syn::parse_quote!({
            ::mobula::node::run_worker_if_asked();
            ::mobula::__private::block_on(async move #body)
        });
        return Ok(quote::quote!(#f));
    }
    let first: syn::Stmt = syn::parse_quote!(::mobula::node::run_worker_if_asked(););
    f.block.stmts.insert(0, first);
    Ok(quote::quote!(#f))
}

const KEYS: &str = "num_cpus, num_gpus, max_retries, retry_exceptions, name, num_returns, generator_backpressure, resources(...)";

/// The builder calls of a remote function's options, and its `num_returns` (with the
/// literal's span) if given.
type RemoteOptions = (Vec<TokenStream2>, Option<(usize, Span)>);

fn parse_options(attr: TokenStream2) -> syn::Result<RemoteOptions> {
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(attr)?;
    let mut calls = Vec::new();
    let mut num_returns = None;
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
            ("max_retries", Meta::NameValue(nv)) => {
                let v = &nv.value;
                if !is_integer(v) {
                    return Err(syn::Error::new(
                        v.span(),
                        "max_retries must be an integer (negative: no limit)",
                    ));
                }
                calls.push(quote!(.max_retries(#v)));
            }
            ("retry_exceptions", Meta::NameValue(nv)) => {
                let b = bool_literal(&nv.value, &key)?;
                calls.push(quote!(.retry_exceptions(#b)));
            }
            ("num_returns", Meta::NameValue(nv)) => {
                let n = match &nv.value {
                    Expr::Lit(syn::ExprLit {
                        lit: Lit::Int(i), ..
                    }) => i.base10_parse::<usize>().ok(),
                    _ => None,
                };
                match n {
                    Some(n @ 2..=6) => num_returns = Some((n, nv.value.span())),
                    _ => {
                        return Err(syn::Error::new(
                            nv.value.span(),
                            "num_returns must be a whole number from 2 to 6 (the function returns a tuple of that many values)",
                        ));
                    }
                }
            }
            ("name", Meta::NameValue(nv)) => {
                let Expr::Lit(syn::ExprLit {
                    lit: Lit::Str(s), ..
                }) = &nv.value
                else {
                    return Err(syn::Error::new(nv.value.span(), "name must be a string"));
                };
                calls.push(quote!(.name(#s)));
            }
            ("generator_backpressure", Meta::NameValue(nv)) => {
                let n = match &nv.value {
                    Expr::Lit(syn::ExprLit {
                        lit: Lit::Int(i), ..
                    }) => i.base10_parse::<u32>().ok().filter(|n| *n >= 1),
                    _ => None,
                };
                let Some(n) = n else {
                    return Err(syn::Error::new(
                        nv.value.span(),
                        "generator_backpressure must be a whole number of items, at least 1",
                    ));
                };
                calls.push(quote!(.generator_backpressure(#n)));
            }
            _ => {
                return Err(syn::Error::new(
                    meta.span(),
                    format!("unknown or malformed remote option `{key}`; the options are: {KEYS}"),
                ));
            }
        }
    }
    Ok((calls, num_returns))
}

/// The options both attributes take the same way: `num_cpus`, `num_gpus`, `resources(...)`.
/// Pushes their builder calls and returns true; returns false for any other option.
pub(crate) fn resource_option(
    key: &str,
    meta: &Meta,
    calls: &mut Vec<TokenStream2>,
) -> syn::Result<bool> {
    match (key, meta) {
        ("num_cpus" | "num_gpus", Meta::NameValue(nv)) => {
            let n = non_negative_number(&nv.value, key)?;
            let method = format_ident!("{}", key);
            calls.push(quote!(.#method(#n)));
        }
        ("resources", Meta::List(list)) => {
            let pairs = Punctuated::<syn::MetaNameValue, Token![,]>::parse_terminated
                .parse2(list.tokens.clone())?;
            for pair in pairs {
                let Some(res) = pair.path.get_ident() else {
                    return Err(syn::Error::new(
                        pair.path.span(),
                        "a resource name must be a single word",
                    ));
                };
                let n = non_negative_number(&pair.value, &res.to_string())?;
                let res = res.to_string();
                calls.push(quote!(.resource(#res, #n)));
            }
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// A `true` or `false` literal, or an error naming the option.
pub(crate) fn bool_literal<'a>(value: &'a Expr, key: &str) -> syn::Result<&'a syn::LitBool> {
    match value {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Bool(b), ..
        }) => Ok(b),
        other => Err(syn::Error::new(
            other.span(),
            format!("{key} must be true or false"),
        )),
    }
}

pub(crate) fn is_integer(e: &Expr) -> bool {
    match e {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Int(_), ..
        }) => true,
        Expr::Unary(u) if matches!(u.op, syn::UnOp::Neg(_)) => is_integer(&u.expr),
        _ => false,
    }
}

pub(crate) fn non_negative_number(e: &Expr, what: &str) -> syn::Result<TokenStream2> {
    match e {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Int(i), ..
        }) if !i.base10_digits().starts_with('-') => {
            let v = i.base10_parse::<u64>()? as f64;
            Ok(quote!(#v))
        }
        Expr::Lit(syn::ExprLit {
            lit: Lit::Float(f), ..
        }) if !f.base10_digits().starts_with('-') => {
            let v: f64 = f.base10_parse()?;
            Ok(quote!(#v))
        }
        _ => Err(syn::Error::new(
            e.span(),
            format!("{what} must be a non-negative number literal"),
        )),
    }
}

/// The impl block's constructor `new`, checked: there, and not async. `what` names the item
/// in errors ("an actor", "a deployment").
pub(crate) fn checked_constructor<'a>(
    ctor: Option<&'a syn::ImplItemFn>,
    self_ty: &Type,
    name: &syn::Ident,
    what: &str,
) -> syn::Result<&'a syn::ImplItemFn> {
    let Some(ctor) = ctor else {
        return Err(syn::Error::new(
            self_ty.span(),
            format!(
                "{what} needs a constructor: `fn new(...) -> {name}` (or `-> Result<{name}, E>`)"
            ),
        ));
    };
    if ctor.sig.asyncness.is_some() {
        return Err(syn::Error::new(
            ctor.sig.span(),
            format!("{what}'s constructor `new` cannot be async"),
        ));
    }
    Ok(ctor)
}

/// An attribute that goes on a struct (with its options) and on the struct's impl block
/// (without): `kind` is `actor` or `deployment`, `state` what the struct holds.
pub(crate) fn struct_or_impl(
    attr: TokenStream2,
    item: TokenStream2,
    kind: &str,
    state: &str,
    on_struct: fn(TokenStream2, syn::ItemStruct) -> syn::Result<TokenStream2>,
    on_impl: fn(syn::ItemImpl) -> syn::Result<TokenStream2>,
) -> syn::Result<TokenStream2> {
    match syn::parse2::<syn::Item>(item)? {
        syn::Item::Struct(s) => on_struct(attr, s),
        syn::Item::Impl(i) => {
            if !attr.is_empty() {
                return Err(syn::Error::new(
                    attr.span(),
                    format!(
                        "{kind} options go on the struct's #[mobula::{kind}(...)], not on its impl block"
                    ),
                ));
            }
            on_impl(i)
        }
        other => Err(syn::Error::new(
            other.span(),
            format!(
                "#[mobula::{kind}] goes on a struct ({state}) and on its impl block (its methods)"
            ),
        )),
    }
}

/// A typed handle: a newtype over `inner` (a generic handle), with `Deref` and `From` to it,
/// and `Debug`, `Serialize` and `Deserialize` through it. `derives` are derived on it too.
pub(crate) fn newtype_handle(
    vis: &syn::Visibility,
    handle: &syn::Ident,
    inner: TokenStream2,
    doc: &str,
    derives: TokenStream2,
) -> TokenStream2 {
    quote! {
        #[doc = #doc]
        #[derive(#derives)]
        #vis struct #handle(#inner);

        impl ::core::ops::Deref for #handle {
            type Target = #inner;
            fn deref(&self) -> &Self::Target {
                &self.0
            }
        }

        impl ::core::convert::From<#inner> for #handle {
            fn from(handle: #inner) -> Self {
                #handle(handle)
            }
        }

        impl ::core::fmt::Debug for #handle {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                ::core::fmt::Debug::fmt(&self.0, f)
            }
        }

        impl ::mobula::__private::serde::Serialize for #handle {
            fn serialize<S: ::mobula::__private::serde::Serializer>(&self, s: S) -> ::core::result::Result<S::Ok, S::Error> {
                ::mobula::__private::serde::Serialize::serialize(&self.0, s)
            }
        }

        impl<'de> ::mobula::__private::serde::Deserialize<'de> for #handle {
            fn deserialize<D: ::mobula::__private::serde::Deserializer<'de>>(d: D) -> ::core::result::Result<Self, D::Error> {
                <#inner as ::mobula::__private::serde::Deserialize<'de>>::deserialize(d).map(#handle)
            }
        }
    }
}
