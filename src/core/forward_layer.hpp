// The forward pass of one MoE layer, top to bottom. `Stages` is a backend (cpu::CpuStages, cuda::CudaStages) that
// implements each named stage; the unpad plan (include/epmoe/plan.hpp) decides what runs and at which width.
// Every stage takes its inputs and returns its outputs explicitly, so one stage can be replaced without the others.
//
//   Stages::Rows        a contiguous [rows, cols] activation buffer of the backend
//   Stages::Routing     top-k ids and weights of this rank's tokens
//   Stages::Batch       token rows to run through this rank's experts, with their (local expert, weight) pairs
//   Stages::Partial     the experts' output: `rows`, each row's weighted sum over its pairs, trimmed to the unpadded
//                       width (a backend's combine may instead form those sums itself as it sends them home: the
//                       CUDA symmetric combine; its `rows` then hold no data)
#pragma once

#include <utility>

#include "epmoe/plan.hpp"

namespace epmoe {

template <class Stages>
typename Stages::Rows forward_layer(Stages& s, const UnpadPlan& plan, const typename Stages::Rows& x) {
  using Rows = typename Stages::Rows;
  const bool latent = plan.shape.latent, shared = plan.shape.shared;

  typename Stages::Routing routing = s.route(x);  // [T, K] ids and weights
  Rows latent_x;
  if (latent) latent_x = s.latent_down(x);        // [T, L]
  const Rows& xr = latent ? latent_x : x;         // routed input, width Din, unpadded

  if (plan.shape.mode == Mode::AllToAll) {
    typename Stages::Batch received = s.dispatch(xr, routing);  // one row per (token, destination rank)
    typename Stages::Partial partial = s.experts(received);     // [received, Din]: scale * sum w * (y + b2), trimmed
    Rows routed = s.combine(partial, received);                 // [T, Din]: the reduction, summed on the home rank
    Rows out = latent ? s.latent_up(routed) : std::move(routed);  // [T, D]
    if (shared) s.add_into(out, s.shared_expert(x));            // full shared expert, replicated weights
    return out;
  }

  // allreduce: same tokens on every rank; each computes its experts' share and its slice of the shared expert.
  typename Stages::Batch local = s.select_local(xr, routing);
  Rows partial = std::move(s.experts(local).rows);  // [T, Din]
  Rows shared_partial;
  if (shared) {
    shared_partial = s.shared_expert(x);  // [T, D], this rank's slice of the shared intermediate width
    if (plan.shared_added_before_reduce) s.add_into(partial, std::move(shared_partial));
  }
  // The one reduction: one collective over one contiguous buffer holding every partial that is still unreduced.
  s.all_reduce(partial, shared && !plan.shared_added_before_reduce ? &shared_partial : nullptr);
  if (!latent) return partial;
  Rows out = s.latent_up(partial);
  if (shared) s.add_into(out, std::move(shared_partial));
  return out;
}

}  // namespace epmoe
