# Finds a CBLAS: the header cblas.h and a library that provides cblas_sgemm (OpenBLAS preferred).
# Defines CBLAS_FOUND, CBLAS_INCLUDE_DIRS, CBLAS_LIBRARIES and the target CBLAS::CBLAS.
find_path(CBLAS_INCLUDE_DIR cblas.h
  PATH_SUFFIXES openblas x86_64-linux-gnu/openblas-pthread x86_64-linux-gnu aarch64-linux-gnu/openblas-pthread)
find_library(CBLAS_LIBRARY NAMES openblas cblas blas
  PATH_SUFFIXES openblas-pthread x86_64-linux-gnu/openblas-pthread)
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(CBLAS REQUIRED_VARS CBLAS_LIBRARY CBLAS_INCLUDE_DIR)
if(CBLAS_FOUND)
  set(CBLAS_INCLUDE_DIRS ${CBLAS_INCLUDE_DIR})
  set(CBLAS_LIBRARIES ${CBLAS_LIBRARY})
  if(NOT TARGET CBLAS::CBLAS)
    add_library(CBLAS::CBLAS UNKNOWN IMPORTED)
    set_target_properties(CBLAS::CBLAS PROPERTIES IMPORTED_LOCATION "${CBLAS_LIBRARY}"
                                                  INTERFACE_INCLUDE_DIRECTORIES "${CBLAS_INCLUDE_DIR}")
  endif()
endif()
mark_as_advanced(CBLAS_INCLUDE_DIR CBLAS_LIBRARY)
