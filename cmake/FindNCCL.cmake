# FindNCCL: NCCL ships no CMake config. Looks in NCCL_ROOT, beside the CUDA toolkit, in system
# paths, then in the nvidia-nccl wheel PyTorch installs (site-packages/nvidia/nccl, whose
# library is only libnccl.so.2): GPU machines with PyTorch but no libnccl-dev still find one.
# Defines NCCL_FOUND, NCCL_VERSION and the imported target NCCL::nccl.
find_path(NCCL_INCLUDE_DIR nccl.h
  HINTS ${NCCL_ROOT} $ENV{NCCL_ROOT} ${CUDAToolkit_INCLUDE_DIRS} PATH_SUFFIXES include)
find_library(NCCL_LIBRARY nccl
  HINTS ${NCCL_ROOT} $ENV{NCCL_ROOT} ${CUDAToolkit_LIBRARY_DIR} PATH_SUFFIXES lib lib64)
if(NOT NCCL_INCLUDE_DIR OR NOT NCCL_LIBRARY)
  # Header and library from one install: both from the wheel, or neither.
  include(MuNvidiaWheels)
  mu_find_in_nvidia_wheels(nccl.h "libnccl.so*" _nccl_wheel_inc _nccl_wheel_lib)
  if(_nccl_wheel_lib)
    set(NCCL_INCLUDE_DIR "${_nccl_wheel_inc}" CACHE PATH "NCCL headers" FORCE)
    set(NCCL_LIBRARY "${_nccl_wheel_lib}" CACHE FILEPATH "NCCL library" FORCE)
  endif()
endif()
if(NCCL_INCLUDE_DIR AND EXISTS "${NCCL_INCLUDE_DIR}/nccl.h")
  file(STRINGS "${NCCL_INCLUDE_DIR}/nccl.h" _nccl_major REGEX "^#define NCCL_MAJOR +[0-9]+")
  file(STRINGS "${NCCL_INCLUDE_DIR}/nccl.h" _nccl_minor REGEX "^#define NCCL_MINOR +[0-9]+")
  string(REGEX MATCH "[0-9]+" _nccl_major "${_nccl_major}")
  string(REGEX MATCH "[0-9]+" _nccl_minor "${_nccl_minor}")
  set(NCCL_VERSION "${_nccl_major}.${_nccl_minor}")
endif()
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(NCCL REQUIRED_VARS NCCL_LIBRARY NCCL_INCLUDE_DIR VERSION_VAR NCCL_VERSION)
if(NCCL_FOUND AND NOT TARGET NCCL::nccl)
  add_library(NCCL::nccl UNKNOWN IMPORTED)
  set_target_properties(NCCL::nccl PROPERTIES IMPORTED_LOCATION "${NCCL_LIBRARY}"
                        INTERFACE_INCLUDE_DIRECTORIES "${NCCL_INCLUDE_DIR}")
endif()
