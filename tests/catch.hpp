// Catch2 2.x (Debian 12) or 3.x (the GPU machine), chosen at configure time (EPMOE_CATCH2_MAJOR).
// Tests use only TEST_CASE, SECTION, REQUIRE/CHECK, INFO and CAPTURE, which both versions spell the same.
#pragma once

#if EPMOE_CATCH2_MAJOR == 3
#include <catch2/catch_test_macros.hpp>
#else
#include <catch2/catch.hpp>
#endif
