// epmoe plan: prints the unpad plan, for one configuration or (with --table) for every combination of padding,
// shared experts, latent transform, mode and rank count, as the table in docs/unpad-timing.md.
#include <iostream>

#include "cli.hpp"
#include "commands.hpp"
#include "epmoe/plan.hpp"
#include "epmoe/presets.hpp"

namespace epmoe::app {
namespace {

std::string trim_point(const UnpadPlan& p) {
  return p.padded() ? "experts: weighted sum writes width " + std::to_string(p.shape.expert_width) : "none (no padding)";
}

std::string collectives(const UnpadPlan& p) {
  std::string s;
  for (const auto& st : p.steps)
    if (st.collective) s += (s.empty() ? "" : ", ") + std::string(to_string(st.stage)) + "[" +
                            std::to_string(st.input_width) + "]";
  return s.empty() ? "none" : s;
}

}  // namespace

int cmd_plan(const Args& args, const MpiComm& comm) {
  std::string preset = "nemotron-mini", mode = "alltoall";
  int pad = 256, ranks = 2;
  bool table = false;
  ArgParser parser("plan", "Print where the padded expert width is trimmed and what width every stage and "
                           "collective sees.");
  parser.add_string("--preset", &preset, "model preset", "NAME");
  parser.add_choice("--mode", &mode, {"alltoall", "allreduce"}, "parallel mode");
  parser.add_int("--pad-multiple", &pad, "padding multiple (0 = none)", 0, 4096);
  parser.add_int("--ranks", &ranks, "number of ranks", 1, 1 << 20);
  parser.add_bool("--table", &table, "every combination for D 2880 (GPT-OSS) padded to 3072, as a Markdown table");
  if (!parser.parse(args)) {
    if (comm.rank() == 0) std::cout << parser.help();
    return 0;
  }
  if (comm.rank() != 0) return 0;
  if (!table) {
    const ModelConfig m = make_preset(preset);
    ParallelConfig p{parse_mode(mode, "--mode"), Placement::Linear, pad, {}};
    p.validate(m, ranks);
    const UnpadPlan plan = make_unpad_plan(m, p, ranks);
    std::cout << plan.one_line() << "\n";
    for (const auto& st : plan.steps)
      std::cout << "  " << to_string(st.stage) << ": width " << st.input_width << " -> " << st.output_width
                << (st.collective ? ", collective" : "") << (st.is_reduction ? ", the reduction" : "")
                << (st.trims ? ", trims" : "") << " (" << st.note << ")\n";
    return 0;
  }
  std::cout << "| padded | shared | latent | mode | ranks | trim point | collectives (width) | shared add sees | "
               "latent up sees | steps |\n|---|---|---|---|---|---|---|---|---|---|\n";
  const int D = 2880, L = 1000;
  for (int padm : {0, 256})
    for (bool shared : {false, true})
      for (bool latent : {false, true})
        for (Mode md : {Mode::AllToAll, Mode::AllReduce})
          for (int r : {1, 2}) {
            const UnpadPlan p = make_unpad_plan(PlanShape{D, latent ? L : D, padm, shared, latent, md, r});
            const PlanStep* sa = p.find(Stage::SharedAdd);
            const PlanStep* lu = p.find(Stage::LatentUp);
            std::cout << "| " << (padm ? "yes" : "no") << " | " << (shared ? "yes" : "no") << " | "
                      << (latent ? "yes" : "no") << " | " << to_string(md) << " | " << (r == 1 ? "1" : "n>1") << " | "
                      << trim_point(p) << " | " << collectives(p) << " | "
                      << (sa ? std::to_string(sa->input_width) : "-") << " | "
                      << (lu ? std::to_string(lu->input_width) : "-") << " | `" << p.one_line() << "` |\n";
          }
  return 0;
}

}  // namespace epmoe::app
