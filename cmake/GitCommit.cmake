# Run at build time (cmake -DSOURCE_DIR=... -DOUTPUT=... -P GitCommit.cmake): writes OUTPUT, a header defining
# EPMOE_GIT_COMMIT as the source tree's short commit, with "-dirty" when tracked files differ from it ("unknown"
# outside a git checkout). The file is rewritten only when that changes, so an unchanged tree rebuilds nothing;
# benchmark records (epmoe bench --json) then name the commit that was built, not the one of the last configure.
execute_process(COMMAND git rev-parse --short HEAD WORKING_DIRECTORY "${SOURCE_DIR}"
                OUTPUT_VARIABLE commit OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE failed)
if(failed OR NOT commit)
  set(commit unknown)
else()
  execute_process(COMMAND git status --porcelain --untracked-files=no WORKING_DIRECTORY "${SOURCE_DIR}"
                  OUTPUT_VARIABLE changes OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(changes)
    string(APPEND commit "-dirty")
  endif()
endif()
set(text "#define EPMOE_GIT_COMMIT \"${commit}\"\n")
set(old "")
if(EXISTS "${OUTPUT}")
  file(READ "${OUTPUT}" old)
endif()
if(NOT old STREQUAL text)
  file(WRITE "${OUTPUT}" "${text}")
endif()
