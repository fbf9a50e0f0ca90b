/// Errors of the image-folder reader and the image decoders (JPEG, PNG).
///
/// Kept apart from `DatasetError` so code that switches over `DatasetError` exhaustively is not
/// affected. Every case names the file (or folder) it is about; `description` says what was
/// expected and what was found, and ends with a hint.
public enum ImageFileError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The file's first bytes are neither the JPEG (`FF D8 FF`) nor the PNG
    /// (`89 50 4E 47 0D 0A 1A 0A`) signature. `found` shows the first bytes in hex.
    case notAnImage(path: String, found: String)
    /// The decoder (libjpeg-turbo or libpng) rejected the data: truncated or damaged file.
    case corruptImage(path: String, format: String, message: String)
    /// A valid image of a kind the reader does not handle (e.g. a PNG libpng cannot convert).
    case unsupportedImage(path: String, format: String, reason: String)
    /// The folder holds no image file (`.jpg`, `.jpeg`, `.png`, any case) where one is needed.
    /// `detail` says where the reader looked.
    case emptyFolder(path: String, detail: String)
    /// The folder does not exist, is not a directory, or cannot be listed.
    case cannotList(path: String, reason: String)

    public var description: String {
        switch self {
        case let .notAnImage(path, found):
            return "\(path): not an image: expected a JPEG (FF D8 FF) or PNG (89 50 4E 47 0D 0A 1A 0A) "
                + "signature, found \(found). Hint: the file has an image extension but other contents "
                + "(text, HTML error page, partial download); delete or replace it (OOD folder sets skip such files and count them)."
        case let .corruptImage(path, format, message):
            return "\(path): corrupt \(format): \(message). Hint: the file is truncated or damaged; "
                + "re-extract it (OOD folder sets skip such files and count them)."
        case let .unsupportedImage(path, format, reason):
            return "\(path): unsupported \(format): \(reason). Hint: convert the file to RGB or grayscale "
                + "(e.g. `convert in.jpg -colorspace sRGB out.jpg`) (OOD folder sets skip such files and count them)."
        case let .emptyFolder(path, detail):
            return "\(path): no image files found (\(detail)); expected at least one .jpg, .jpeg or .png. "
                + "Hint: check the path and the layout (class-per-subfolder: ROOT/CLASS/IMAGE; flat: ROOT/IMAGE)."
        case let .cannotList(path, reason):
            return "\(path): cannot list folder (\(reason)). Hint: check that the path exists, is a directory and is readable."
        }
    }
}
