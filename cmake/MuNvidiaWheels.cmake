# mu_find_in_nvidia_wheels(<header> <library glob> <include var> <library var>)
#
# GPU machines set up for PyTorch may carry CUDA libraries only as pip wheels (nvidia-cublas,
# nvidia-nccl-cu13, ...): namespace package `nvidia`, each library in <pkg>/include and
# <pkg>/lib, its shared object versioned only (libnccl.so.2, libcublasLt.so.13). This looks
# through the `nvidia` package of MU_PYTHON (or python3) for <header> in some <pkg>/include and a
# library matching <library glob> in the same <pkg>/lib, so header and library come from one
# wheel. Sets both variables, or neither (empty).
function(mu_find_in_nvidia_wheels header libglob inc_var lib_var)
  set(found_inc "")
  set(found_lib "")
  set(roots "")
  foreach(py ${MU_PYTHON} python3)
    if(NOT roots)
      execute_process(COMMAND ${py} -c "import nvidia; print(';'.join(nvidia.__path__))"
                      OUTPUT_VARIABLE out OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE rc)
      if(rc EQUAL 0)
        set(roots "${out}")
      endif()
    endif()
  endforeach()
  foreach(root ${roots})
    if(NOT found_lib)
      file(GLOB_RECURSE headers "${root}/*/include/${header}")
      foreach(h ${headers})
        if(NOT found_lib)
          get_filename_component(inc "${h}" DIRECTORY)
          get_filename_component(pkg "${inc}" DIRECTORY)
          file(GLOB libs "${pkg}/lib/${libglob}")
          if(libs)
            list(SORT libs)  # the shortest name (libx.so before libx.so.2.28.3) first
            list(GET libs 0 lib)
            set(found_inc "${inc}")
            set(found_lib "${lib}")
          endif()
        endif()
      endforeach()
    endif()
  endforeach()
  set(${inc_var} "${found_inc}" PARENT_SCOPE)
  set(${lib_var} "${found_lib}" PARENT_SCOPE)
endfunction()
