// epmoe: expert-parallel MoE layers over MPI (and NCCL on GPUs). Dispatches to the subcommands.
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>

#include "commands.hpp"
#include "epmoe/comm.hpp"
#include "epmoe/error.hpp"

namespace {

const char* kUsage =
    "usage: epmoe <command> [flags]     (run it under mpirun for several ranks)\n"
    "\n"
    "commands:\n"
    "  run               run MoE layers expert-parallel, report per-phase times, verify against float64\n"
    "  bench             sweep tokens per rank; per-phase times, throughput, bandwidth and ceilings\n"
    "  plan              print the unpad plan: where padding is trimmed, what each collective sees\n"
    "  make-checkpoint   write a preset's weights as an HDF5 checkpoint (docs/checkpoint-format.md)\n"
    "  inspect           describe a checkpoint and list every way it breaks the contract\n"
    "  convert           convert a Hugging Face MoE checkpoint (safetensors) to an epmoe checkpoint\n"
    "\n"
    "'epmoe <command> --help' lists the command's flags and their defaults.\n";

// Under srun, a broken PMI set-up starts N separate one-rank jobs instead of one job of N ranks: each would run
// the whole problem alone. Refuse to start when the MPI world is not what Slurm launched.
void check_slurm_world(int world_size) {
  const char* step_tasks = std::getenv("SLURM_STEP_NUM_TASKS");
  if (!step_tasks) return;
  const int promised = std::atoi(step_tasks);
  const bool direct_launch = std::getenv("OMPI_COMM_WORLD_SIZE") == nullptr;  // srun, not mpirun
  if (promised > 1 && (world_size == 1 || (direct_launch && world_size != promised)))
    EPMOE_THROW(epmoe::ErrorKind::Config, "Slurm started ", promised, " tasks but this MPI job has ", world_size,
                " rank(s): MPI was not initialised through Slurm's PMI. Launch with 'srun --mpi=pmix' (see "
                "'srun --mpi=list') or build Open MPI with Slurm/PMIx support");
}

}  // namespace

int main(int argc, char** argv) {
  return epmoe::run_mpi_program(argc, argv, "epmoe", [&](const epmoe::MpiComm& comm) {
    check_slurm_world(comm.size());
    std::vector<std::string> args(argv + 1, argv + argc);
    const std::map<std::string, int (*)(const epmoe::app::Args&, const epmoe::MpiComm&)> commands = {
        {"run", epmoe::app::cmd_run},
        {"plan", epmoe::app::cmd_plan},
        {"bench", epmoe::app::cmd_bench},
        {"make-checkpoint", epmoe::app::cmd_make_checkpoint},
        {"inspect", epmoe::app::cmd_inspect},
        {"convert", epmoe::app::cmd_convert},
    };
    if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
      if (comm.rank() == 0) std::cout << kUsage;
      return args.empty() ? 2 : 0;
    }
    auto it = commands.find(args[0]);
    EPMOE_REQUIRE(it != commands.end(), epmoe::ErrorKind::Usage, "unknown command '", args[0],
                  "'; commands: run, bench, plan, make-checkpoint, inspect, convert (see 'epmoe --help')");
    return it->second(epmoe::app::Args(args.begin() + 1, args.end()), comm);
  });
}
