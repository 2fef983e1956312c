// The subcommands of the epmoe program. Each parses its own flags (cli.hpp), runs on every rank of `comm`, prints
// only on rank 0, and returns the exit code; errors are thrown as epmoe::Error and handled by main().
#pragma once

#include <string>
#include <vector>

#include "epmoe/comm.hpp"

namespace epmoe::app {

using Args = std::vector<std::string>;

int cmd_run(const Args& args, const MpiComm& comm);              // run.cpp: run layers, report, verify
int cmd_bench(const Args& args, const MpiComm& comm);            // cmd_bench.cpp: the benchmark sweep
int cmd_plan(const Args& args, const MpiComm& comm);             // cmd_plan.cpp: print the unpad plan
int cmd_make_checkpoint(const Args& args, const MpiComm& comm);  // io: write a preset's checkpoint
int cmd_inspect(const Args& args, const MpiComm& comm);          // io: describe and validate a checkpoint
int cmd_convert(const Args& args, const MpiComm& comm);          // io: Hugging Face safetensors -> checkpoint

}  // namespace epmoe::app
