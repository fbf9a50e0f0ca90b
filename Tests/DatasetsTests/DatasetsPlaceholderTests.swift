import XCTest
@testable import Datasets

final class DatasetsPlaceholderTests: XCTestCase {
    func testModuleLinks() { XCTAssertTrue(true) }
}
