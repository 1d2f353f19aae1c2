# The table of unfolding loops (unfold.h) that the convolution calls through.
cdef extern from "unfold.h":
    ctypedef struct pcn_unfolding:
        void (*pad_f)(const float*, float*, int, int, int, int, int) noexcept nogil
        void (*im2col_f)(const float*, float*, int, int, int, int, int, int,
                         int, int, int, int, int) noexcept nogil
        void (*im2col_padded_f)(const float*, float*, int, int, int, int, int,
                                int, int, int, int) noexcept nogil
        void (*col2im_f)(const float*, float*, int, int, int, int, int, int,
                         int, int, int, int, int) noexcept nogil
        void (*col2im_padded_f)(const float*, float*, float*, int, int, int,
                                int, int, int, int, int, int) noexcept nogil
        void (*pad_d)(const double*, double*, int, int, int, int, int) noexcept nogil
        void (*im2col_d)(const double*, double*, int, int, int, int, int, int,
                         int, int, int, int, int) noexcept nogil
        void (*im2col_padded_d)(const double*, double*, int, int, int, int,
                                int, int, int, int, int) noexcept nogil
        void (*col2im_d)(const double*, double*, int, int, int, int, int, int,
                         int, int, int, int, int) noexcept nogil
        void (*col2im_padded_d)(const double*, double*, double*, int, int, int,
                                int, int, int, int, int, int) noexcept nogil
    void pcn_fill_unfolding(pcn_unfolding* table) noexcept nogil
